package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/build"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/deploy"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/publish"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/stages/scan"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
)

// scanPolicy builds the gate policy from the scan flags.
func scanPolicy(failOn string, maxCVSS float64, allow []string) (*findings.Policy, error) {
	p := findings.DefaultPolicy()
	sev, err := findings.ParseSeverity(failOn)
	if err != nil {
		return nil, fmt.Errorf("--fail-on: %w", err)
	}
	if maxCVSS < 0 || maxCVSS > 10 {
		return nil, fmt.Errorf("--max-cvss %v: want a CVSS score from 0 to 10", maxCVSS)
	}
	p.FailOn, p.MaxCVSS, p.Allow = sev, maxCVSS, allow
	return &p, nil
}

// parseUpdates reads name=ref arguments; each may hold several, comma-separated.
func parseUpdates(args []string) ([]manifest.Update, error) {
	var out []manifest.Update
	for _, a := range args {
		for _, part := range strings.Split(a, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			u, err := manifest.ParseUpdate(part)
			if err != nil {
				return nil, err
			}
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("at least one --image name=tag is required")
	}
	return out, nil
}

// plaintext reads an optional secret ("" when not given). Its value goes only to the stage that uses it.
func plaintext(ctx context.Context, s *dagger.Secret) (string, error) {
	if s == nil {
		return "", nil
	}
	v, err := s.Plaintext(ctx)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return v, nil
}

// buildAndPublish runs the container stages of deploy and returns the published references.
func buildAndPublish(ctx context.Context, rep *report.Run, source *dagger.Directory, skipScan bool, nvd *dagger.Secret,
	registry, version, user string, password *dagger.Secret, sourceCommit string, dryRun bool) ([]string, error) {
	if version == "" {
		return nil, fmt.Errorf("--version is required to build and publish (or give --backend-tag and --frontend-tag)")
	}
	if skipScan {
		rep.Skip("scan", "--skip-scan")
	} else {
		end := rep.Begin("scan")
		res, err := scan.Run(ctx, dag, source, scan.Options{NVDAPIKey: nvd})
		if err == nil && !res.Verdict.Pass {
			err = errors.New(res.Verdict.Reason())
		}
		out := map[string]string{}
		if res != nil {
			out["findings"] = fmt.Sprint(len(res.Findings))
		}
		end(out, err)
		if err != nil {
			return nil, err
		}
	}
	end := rep.Begin("build")
	built, err := build.Both(ctx, dag, source, build.Options{})
	end(nil, err)
	if err != nil {
		return nil, err
	}
	if dryRun {
		refs := []string{registry + "/wanderlust-backend:" + version, registry + "/wanderlust-frontend:" + version}
		rep.Skip("publish", "--dry-run: would push "+strings.Join(refs, ", "))
		return refs, nil
	}
	end = rep.Begin("publish")
	pub, err := publish.Images(ctx, map[string]*dagger.Container{build.Backend: built.Backend, build.Frontend: built.Frontend},
		publish.Options{Registry: registry, Username: user, Password: password, Version: version, SourceCommit: sourceCommit})
	out := map[string]string{}
	var refs []string
	for _, p := range pub {
		out[p.Name] = p.Digest
		refs = append(refs, strings.SplitN(p.Ref, "@", 2)[0])
	}
	end(out, err)
	return refs, err
}

// deployFlags are the module flags that deploy and promote share.
type deployFlags struct {
	env, repo, branch   string
	gitToken            *dagger.Secret
	regUser             string
	regPass             *dagger.Secret
	pinDigest, dryRun   bool
	argoServer, app     string
	appNamespace        string
	argoToken           *dagger.Secret
	plainText, rollback bool
	insecure, grpcWeb   bool
	timeout             int
	smtpHost, smtpTLS   string
	smtpPort            int
	smtpUser, from      string
	smtpPass            *dagger.Secret
	to                  []string
	sourceCommit        string
	sourceCommitTime    string
}

// deployOptions turns the module's flags into deploy options, reading the secrets. Flags that can be
// checked without the network are checked here; deploy.Check does the rest.
func deployOptions(ctx context.Context, f deployFlags) (*deploy.Options, error) {
	var commitTime time.Time
	if f.sourceCommitTime != "" {
		t, err := time.Parse(time.RFC3339, f.sourceCommitTime)
		if err != nil {
			return nil, fmt.Errorf("--source-commit-time %q: want RFC 3339, e.g. 2026-11-28T09:30:00Z", f.sourceCommitTime)
		}
		commitTime = t
	}
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %d: want a positive number of seconds", f.timeout)
	}
	var secrets [4]string
	for i, s := range []*dagger.Secret{f.gitToken, f.regPass, f.argoToken, f.smtpPass} {
		v, err := plaintext(ctx, s)
		if err != nil {
			return nil, err
		}
		secrets[i] = v
	}
	logf := func(s string) { fmt.Fprintln(os.Stderr, s) }
	o := &deploy.Options{
		Registry:  registry.Auth{Username: f.regUser, Password: secrets[1]},
		PinDigest: f.pinDigest, DryRun: f.dryRun, Rollback: f.rollback, SourceCommitTime: commitTime,
		Bump: bump.Options{Env: f.env, SourceCommit: f.sourceCommit,
			Git: git.Options{URL: f.repo, Branch: f.branch, Auth: git.Auth{Token: secrets[0]}, Log: logf}},
	}
	if f.argoServer != "" {
		o.Argo = &argocd.Options{Server: f.argoServer, Token: secrets[2], PlainText: f.plainText, Insecure: f.insecure, GRPCWeb: f.grpcWeb,
			App: cmp.Or(f.app, "wanderlust-"+f.env), AppNamespace: f.appNamespace, Timeout: time.Duration(f.timeout) * time.Second, Log: logf}
	}
	if f.smtpHost != "" {
		o.Notify = &notify.Options{Host: f.smtpHost, Port: f.smtpPort, TLS: f.smtpTLS, Username: f.smtpUser, Password: secrets[3], From: f.from, To: f.to}
	}
	return o, nil
}

// deployImages are the references deploy ships: the given tags, or the ones the build will push.
func deployImages(registry, version, backendTag, frontendTag string) ([]string, error) {
	switch {
	case (backendTag == "") != (frontendTag == ""):
		return nil, errors.New("--backend-tag and --frontend-tag go together")
	case backendTag != "":
		return []string{registry + "/wanderlust-backend:" + backendTag, registry + "/wanderlust-frontend:" + frontendTag}, nil
	case version == "":
		return nil, errors.New("--version is required to build and publish (or give --backend-tag and --frontend-tag)")
	}
	return []string{registry + "/wanderlust-backend:" + version, registry + "/wanderlust-frontend:" + version}, nil
}

// renderer returns the report renderer of a --report-format.
func renderer(format string) (func(*report.Run) string, error) {
	switch format {
	case "markdown":
		return (*report.Run).Markdown, nil
	case "json":
		return func(r *report.Run) string { return string(r.JSON()) }, nil
	}
	return nil, fmt.Errorf("--report-format %q: want markdown or json", format)
}
