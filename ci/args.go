package main

// The functions' bodies: the constructor's shared configuration and each call's flags turned into the
// stages' typed options. Secrets are read here and go only to the stage that uses them.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/stages/build"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/metrics"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/publish"
	"wanderlust.dev/pipeline/ci/stages/record"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/stages/scan"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
)

// logf prints a stage's progress line on stderr (the function's result goes to stdout).
func logf(s string) { fmt.Fprintln(os.Stderr, s) }

// plaintext reads an optional secret ("" when not given).
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

// need says which constructor flag a function requires.
func need(value, flag, why string) error {
	if value == "" {
		return fmt.Errorf("--%s is required: %s (a flag of the constructor: dagger call --%s … <function>)", flag, why, flag)
	}
	return nil
}

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

func (m *Wanderlust) scan(ctx context.Context, images bool, failOn string, maxCVSS float64, allow []string, o scan.Options) (*scan.Result, error) {
	policy, err := scanPolicy(failOn, maxCVSS, allow)
	if err != nil {
		return nil, err
	}
	o.Policy = policy
	if images {
		built, err := build.Both(ctx, dag, m.Source, build.Options{})
		if err != nil {
			return nil, err
		}
		o.Images = map[string]*dagger.Container{build.Backend: built.Backend, build.Frontend: built.Frontend}
	}
	return scan.Run(ctx, dag, m.Source, o)
}

// publishAndPrint publishes (with evidence when a signing key is given) and prints one line per
// image, then one per image's evidence.
func (m *Wanderlust) publishAndPrint(ctx context.Context, version, sourceCommit string, skipTests bool) (string, error) {
	if err := need(m.Registry, "registry", "publish pushes the images there"); err != nil {
		return "", err
	}
	// The signing key, source repository and commit are checked before anything is built.
	ev, err := m.evidenceOptions(ctx, sourceCommit, skipTests)
	if err != nil {
		return "", err
	}
	built, err := build.Both(ctx, dag, m.Source, build.Options{SkipTests: skipTests})
	if err != nil {
		return "", err
	}
	images := map[string]*dagger.Container{build.Backend: built.Backend, build.Frontend: built.Frontend}
	pub, err := publish.Images(ctx, images,
		publish.Options{Registry: m.Registry, Username: m.RegistryUsername, Password: m.RegistryPassword, Version: version, SourceCommit: sourceCommit})
	if err != nil {
		return "", err
	}
	var lines []string
	for _, p := range pub {
		lines = append(lines, p.Name+" "+p.Ref)
	}
	if ev != nil {
		proven, err := m.prove(ctx, ev, images, pub)
		if err != nil {
			return "", fmt.Errorf("%w\n\npushed without evidence:\n%s", err, strings.Join(lines, "\n"))
		}
		lines = append(lines, evidenceLines(proven)...)
	}
	return strings.Join(lines, "\n"), nil
}

func (m *Wanderlust) registryAuth(ctx context.Context) (registry.Auth, error) {
	pass, err := plaintext(ctx, m.RegistryPassword)
	host, _, _ := strings.Cut(m.Registry, "/")
	return registry.Auth{Username: m.RegistryUsername, Password: pass, Host: host}, err
}

// gitOptions are the GitOps repository's options, with the token read.
func (m *Wanderlust) gitOptions(ctx context.Context, why string) (git.Options, error) {
	if err := need(m.Repo, "repo", why); err != nil {
		return git.Options{}, err
	}
	token, err := plaintext(ctx, m.GitToken)
	if err != nil {
		return git.Options{}, err
	}
	return git.Options{URL: m.Repo, Branch: m.Branch, Auth: git.Auth{Username: m.GitUser, Token: token}, Log: logf}, nil
}

// config is what the GitOps program needs of the constructor's configuration (no secret: those go
// to it as secret variables, see secrets).
func (m *Wanderlust) config() gitops.Config {
	host, _, _ := strings.Cut(m.Registry, "/")
	c := gitops.Config{Repo: m.Repo, Branch: m.Branch, GitUser: m.GitUser, Registry: host, RegistryUser: m.RegistryUsername,
		ArgoCD: gitops.ArgoCD{Server: m.ArgocdServer, PlainText: m.ArgocdPlainText, Insecure: m.ArgocdInsecure, GRPCWeb: m.ArgocdGrpcWeb, AppNamespace: m.AppNamespace, RepoURL: m.ArgocdRepoURL}}
	if m.SMTPHost != "" {
		c.SMTP = gitops.SMTP{Host: m.SMTPHost, Port: m.SMTPPort, TLS: m.SMTPTLS, Username: m.SMTPUsername, From: m.MailFrom, To: m.MailTo}
	}
	return c
}

// secrets are the credentials the GitOps program gets, as secret variables.
func (m *Wanderlust) secrets() map[string]*dagger.Secret {
	return map[string]*dagger.Secret{gitops.EnvGitToken: m.GitToken, gitops.EnvArgoCDToken: m.ArgocdToken,
		gitops.EnvRegistryPassword: m.RegistryPassword, gitops.EnvSMTPPassword: m.SMTPPassword, gitops.EnvWebhookURL: m.WebhookURL}
}

// program is the container the GitOps program runs in: --runner-image, or built from the module's
// own source (the first deploy on an engine compiles it; later ones reuse the build).
func (m *Wanderlust) program() (*dagger.Container, error) { return program(m.RunnerImage, m.GoEnv) }

// program is the GitOps program's container: the published runnerImage, or built with goEnv.
func program(runnerImage string, goEnv []string) (*dagger.Container, error) {
	if runnerImage != "" {
		return runner.Pull(dag, runnerImage), nil
	}
	env, err := runner.ParseGoEnv(goEnv)
	if err != nil {
		return nil, err
	}
	return runner.Build(dag, dag.CurrentModule().Source(), "", env), nil
}

// gitops runs one request of the GitOps program.
func (m *Wanderlust) gitops(ctx context.Context, cmd string, request any) (*gitops.Result, error) {
	ctr, err := m.program()
	if err != nil {
		return nil, err
	}
	return runner.Run(ctx, ctr, cmd, request, m.secrets())
}

// notifyOptions are the SMTP settings (nil without --smtp-host).
func (m *Wanderlust) notifyOptions(ctx context.Context) (*notify.Options, error) {
	if m.SMTPHost == "" {
		return nil, nil
	}
	pass, err := plaintext(ctx, m.SMTPPassword)
	if err != nil {
		return nil, err
	}
	o := &notify.Options{Host: m.SMTPHost, Port: m.SMTPPort, TLS: m.SMTPTLS, Username: m.SMTPUsername, Password: pass, From: m.MailFrom, To: m.MailTo}
	return o, o.Validate()
}

// bumpFlags are bump's own flags.
type bumpFlags struct {
	images                           []string
	env, path, knownHosts            string
	sshKey                           *dagger.Secret
	authorName, authorEmail, message string
	sourceCommit                     string
	dryRun                           bool
	maxPushes                        int
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

func (m *Wanderlust) bump(ctx context.Context, f bumpFlags) (string, error) {
	updates, err := parseUpdates(f.images)
	if err != nil {
		return "", err
	}
	g, err := m.gitOptions(ctx, "bump commits to the GitOps repository")
	if err != nil {
		return "", err
	}
	key, err := plaintext(ctx, f.sshKey)
	if err != nil {
		return "", err
	}
	g.Auth.SSHPrivateKey, g.Auth.SSHKnownHosts = []byte(key), []byte(f.knownHosts)
	g.Author = git.Signature{Name: f.authorName, Email: f.authorEmail}
	g.MaxPushes, g.DryRun = f.maxPushes, f.dryRun
	res, err := bump.Run(ctx, bump.Options{Git: g, Env: f.env, Path: f.path, Updates: updates, Message: f.message, SourceCommit: f.sourceCommit})
	if err != nil {
		return "", err
	}
	logf(res.Summary)
	switch {
	case f.dryRun:
		return res.Diff, nil
	case !res.Changed:
		return "unchanged\n", nil
	}
	return res.SHA + "\n", nil // a line, as shells and `$(…)` expect
}

func (m *Wanderlust) sync(ctx context.Context, app, revision string, timeout, degradedGrace int, rollback, allowOlder bool, runID string, v probe.Flags) (string, error) {
	if err := need(m.ArgocdServer, "argocd-server", "sync talks to Argo CD"); err != nil {
		return "", err
	}
	if err := m.config().ArgoCD.Check(); err != nil {
		return "", err
	}
	if err := gitops.CheckTimeout(timeout); err != nil {
		return "", err
	}
	if _, err := v.Options(nil); err != nil {
		return "", err
	}
	res, err := m.gitops(ctx, gitops.CmdSync, gitops.Sync{Config: m.config(), App: app, Revision: revision, TimeoutSeconds: timeout,
		DegradedGrace: degradedGrace, Rollback: rollback, AllowOlder: allowOlder, Verify: v, RunID: cmp.Or(runID, record.NewRunID())})
	if err != nil {
		return "", err
	}
	if res.Error != "" {
		return "", errors.New(res.Error)
	}
	return res.Output, nil
}

// deployFlags are deploy's own flags.
type deployFlags struct {
	env, version, backendTag, frontendTag string
	sourceCommit, sourceCommitTime        string
	pinDigest, rollback, dryRun, skipScan bool
	skipCI, noSync                        bool
	app, reportFormat                     string
	timeout                               int
	nvd                                   *dagger.Secret
	verify                                probe.Flags
	requireEvidence                       bool
	evidenceFailOn                        string
	exitZero                              bool
	canary                                gitops.Canary
}

// deployRequest turns the configuration and deploy's flags into the GitOps program's request. What can
// be checked without the network is checked here, before the program runs; its preflight does the rest.
func (m *Wanderlust) deployRequest(ctx context.Context, f deployFlags) (*gitops.Deploy, error) {
	if _, err := gitops.SourceCommitTime(f.sourceCommitTime); err != nil {
		return nil, err
	}
	if err := need(m.Repo, "repo", "deploy commits to the GitOps repository"); err != nil {
		return nil, err
	}
	if err := bump.CheckEnv(f.env); err != nil {
		return nil, err
	}
	if !f.noSync {
		if m.ArgocdServer == "" {
			return nil, gitops.ErrNoArgoCD
		}
		if err := m.config().ArgoCD.Check(); err != nil {
			return nil, err
		}
	}
	if err := gitops.CheckTimeout(f.timeout); err != nil {
		return nil, err
	}
	if _, err := m.notifyOptions(ctx); err != nil {
		return nil, err
	}
	if _, err := f.verify.Options(nil); err != nil {
		return nil, err
	}
	if err := f.canary.Check(); err != nil {
		return nil, err
	}
	q := &gitops.Deploy{Canary: f.canary, Config: m.config(), Env: f.env, App: f.app, PinDigest: f.pinDigest, DryRun: f.dryRun, Rollback: f.rollback,
		SkipCI: f.skipCI, NoSync: f.noSync, SourceCommit: f.sourceCommit, SourceCommitTime: f.sourceCommitTime, TimeoutSeconds: f.timeout,
		Verify: f.verify, RunID: record.NewRunID()}
	var err error
	if q.Evidence, err = m.gate(ctx, f.requireEvidence, evidenceFlags{sourceCommit: f.sourceCommit, failOn: f.evidenceFailOn}, "or deploy without --require-evidence"); err != nil {
		return nil, err
	}
	return q, nil
}

// deployImages are the references deploy ships: the given tags, or the ones the build will push.
func deployImages(registry, version, backendTag, frontendTag string) ([]string, error) {
	switch {
	case registry == "":
		return nil, errors.New("--registry is required: deploy names the images <registry>/wanderlust-{backend,frontend}")
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

func (m *Wanderlust) deploy(ctx context.Context, f deployFlags) (string, error) {
	render, err := renderer(f.reportFormat)
	if err != nil {
		return "", err
	}
	build := f.backendTag == "" && f.frontendTag == ""
	images, err := deployImages(m.Registry, f.version, f.backendTag, f.frontendTag)
	if err != nil {
		return "", err
	}
	q, err := m.deployRequest(ctx, f)
	if err != nil {
		return "", err
	}
	q.Images = images
	// The signing key, source repository and commit are checked before anything is built.
	var ev *publish.EvidenceOptions
	if build && !f.dryRun {
		if ev, err = m.evidenceOptions(ctx, f.sourceCommit, false); err != nil {
			return "", err
		}
		if f.requireEvidence && ev == nil {
			return "", errors.New("--require-evidence with a build needs --signing-key: the images it would push carry no evidence and would be refused")
		}
	}
	q.Report = report.New("Wanderlust deploy", f.env)
	if build && f.dryRun {
		q.SkipVerify = "--dry-run: the built images are not pushed"
		if q.Evidence != nil {
			q.Evidence = nil
			q.Report.Skip("evidence", "--dry-run: the built images are not pushed, so there is no evidence to check yet")
		}
	}
	// Everything is checked before the first side effect: nothing is built, pushed or synced when an
	// input, the repository or Argo CD is wrong. The GitOps program checks, and mails a refusal.
	q.Phase = gitops.PhasePreflight
	res, err := m.gitops(ctx, gitops.CmdDeploy, q)
	if err != nil {
		return "", err
	}
	if res.Error != "" {
		return m.ended(res, render, f.exitZero, "\n\nnothing was built, pushed or synced")
	}
	q.Report = res.Report
	if build {
		refs, err := m.buildAndPublish(ctx, q.Report, f, ev)
		if err != nil {
			// The failure is recorded and mailed like a failed rollout, by the program.
			q.Phase, q.Error = gitops.PhaseFailed, err.Error()
			if res, ferr := m.gitops(ctx, gitops.CmdDeploy, q); ferr == nil && res.Report != nil {
				q.Report = res.Report
			} else {
				q.Report.Finish(err)
			}
			return m.ended(&gitops.Result{Error: err.Error(), Report: q.Report}, render, f.exitZero, "")
		}
		q.Images = refs
	} else {
		for _, s := range []string{"scan", "build", "publish"} {
			q.Report.Skip(s, "--backend-tag and --frontend-tag given")
		}
	}
	q.Phase = gitops.PhaseRun
	if res, err = m.gitops(ctx, gitops.CmdDeploy, q); err != nil {
		return "", err
	}
	return m.ended(res, render, f.exitZero, "")
}

// ended is a run's outcome as the function returns it: the report, and for a failed run the error
// with the report (or, with --exit-zero, the report alone: CI captures it from stdout and gates on it
// with `report … gate`).
func (m *Wanderlust) ended(res *gitops.Result, render func(*report.Run) string, exitZero bool, note string) (string, error) {
	if res.Report == nil {
		res.Report = report.New("Wanderlust", "")
		res.Report.Finish(errors.New(res.Error))
	}
	if res.Error == "" || exitZero {
		return render(res.Report), nil
	}
	return "", fmt.Errorf("%s%s\n\n%s", res.Error, note, render(res.Report))
}

// buildAndPublish runs the container stages of deploy and returns the published references.
func (m *Wanderlust) buildAndPublish(ctx context.Context, rep *report.Run, f deployFlags, ev *publish.EvidenceOptions) ([]string, error) {
	if f.skipScan {
		rep.Skip("scan", "--skip-scan")
	} else {
		sctx, end := rep.Start(ctx, "scan")
		res, err := scan.Run(sctx, dag, m.Source, scan.Options{NVDAPIKey: f.nvd, TrivyDBRepository: m.TrivyDBRepository})
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
	sctx, end := rep.Start(ctx, "build")
	built, err := build.Both(sctx, dag, m.Source, build.Options{})
	end(nil, err)
	if err != nil {
		return nil, err
	}
	if f.dryRun {
		refs := []string{m.Registry + "/wanderlust-backend:" + f.version, m.Registry + "/wanderlust-frontend:" + f.version}
		rep.Skip("publish", "--dry-run: would push "+strings.Join(refs, ", "))
		return refs, nil
	}
	images := map[string]*dagger.Container{build.Backend: built.Backend, build.Frontend: built.Frontend}
	sctx, end = rep.Start(ctx, "publish")
	pub, err := publish.Images(sctx, images,
		publish.Options{Registry: m.Registry, Username: m.RegistryUsername, Password: m.RegistryPassword, Version: f.version, SourceCommit: f.sourceCommit})
	out := map[string]string{}
	var refs []string
	for _, p := range pub {
		out[p.Name] = p.Digest
		refs = append(refs, strings.SplitN(p.Ref, "@", 2)[0])
	}
	end(out, err)
	if err != nil || ev == nil {
		if ev == nil && err == nil {
			rep.Skip("attest", "no --signing-key")
		}
		return refs, err
	}
	sctx, end = rep.Start(ctx, "attest")
	proven, err := m.prove(sctx, ev, images, pub)
	out = map[string]string{}
	for i, l := range evidenceLines(proven) {
		out[proven[i].Name] = l
	}
	end(out, err)
	return refs, err
}

func (m *Wanderlust) promote(ctx context.Context, from, to, fromApp, toApp string, rollback bool, timeout int, reportFormat string, exitZero bool, ef evidenceFlags, v probe.Flags, c gitops.Canary) (string, error) {
	render, err := renderer(reportFormat)
	if err != nil {
		return "", err
	}
	if err := need(m.ArgocdServer, "argocd-server", "promote checks and syncs Argo CD applications"); err != nil {
		return "", err
	}
	if err := m.config().ArgoCD.Check(); err != nil {
		return "", err
	}
	for _, env := range []string{from, to} {
		if err := bump.CheckEnv(env); err != nil {
			return "", err
		}
	}
	if err := need(m.Repo, "repo", "promote commits to the GitOps repository"); err != nil {
		return "", err
	}
	if err := m.checkRun(ctx, timeout, v, c); err != nil {
		return "", err
	}
	gate, err := m.gate(ctx, true, ef, `to promote without it, --allow-unverified "reason"`)
	if err != nil {
		return "", err
	}
	res, err := m.gitops(ctx, gitops.CmdPromote, gitops.Promote{Config: m.config(), From: from, To: to, FromApp: fromApp, ToApp: toApp,
		Rollback: rollback, TimeoutSeconds: timeout, Verify: v, Canary: c, Evidence: *gate, RunID: record.NewRunID()})
	if err != nil {
		return "", err
	}
	return m.ended(res, render, exitZero, "")
}

// checkRun checks, without the network, the settings a promote or a canary run shares: the
// timeout, the mail settings, the checks and the canary's.
func (m *Wanderlust) checkRun(ctx context.Context, timeout int, v probe.Flags, c gitops.Canary) error {
	if err := gitops.CheckTimeout(timeout); err != nil {
		return err
	}
	if _, err := m.notifyOptions(ctx); err != nil {
		return err
	}
	if _, err := v.Options(nil); err != nil {
		return err
	}
	return c.Check()
}

// continueCanary runs promote-canary (abort false) or abort-canary in the GitOps program, after
// checking what needs no network.
func (m *Wanderlust) continueCanary(ctx context.Context, env, app string, timeout int, abort bool, reportFormat string, exitZero bool, v probe.Flags, c gitops.Canary) (string, error) {
	render, err := renderer(reportFormat)
	if err != nil {
		return "", err
	}
	what := "promote-canary"
	if abort {
		what = "abort-canary"
	}
	if err := need(m.ArgocdServer, "argocd-server", what+" resumes or aborts Argo Rollouts through Argo CD"); err != nil {
		return "", err
	}
	if err := m.config().ArgoCD.Check(); err != nil {
		return "", err
	}
	if err := need(m.Repo, "repo", what+" reads (and, to undo, commits to) the GitOps repository"); err != nil {
		return "", err
	}
	if err := bump.CheckEnv(env); err != nil {
		return "", err
	}
	if err := m.checkRun(ctx, timeout, v, c); err != nil {
		return "", err
	}
	res, err := m.gitops(ctx, gitops.CmdCanary, gitops.ContinueCanary{Config: m.config(), Env: env, App: app, Abort: abort, TimeoutSeconds: timeout, Verify: v, Canary: c})
	if err != nil {
		return "", err
	}
	return m.ended(res, render, exitZero, "")
}

func (m *Wanderlust) notify(ctx context.Context, file *dagger.File) (string, error) {
	if err := need(m.SMTPHost, "smtp-host", "notify sends with the configured SMTP server"); err != nil {
		return "", err
	}
	n, err := m.notifyOptions(ctx)
	if err != nil {
		return "", err
	}
	r := report.New("Wanderlust mail test", "")
	r.Finish(nil)
	r.Outcome(report.MailTest, "a test message sent with the pipeline's SMTP settings: they work")
	if file != nil {
		body, err := file.Contents(ctx)
		if err != nil {
			return "", err
		}
		if r, err = report.Parse([]byte(body)); err != nil {
			return "", fmt.Errorf("--report: %w", err)
		}
	}
	if err := notify.Send(ctx, *n, r); err != nil {
		return "", err
	}
	return fmt.Sprintf("sent %q to %s", notify.Subject(r), strings.Join(n.To, ", ")), nil
}

func (m *Wanderlust) metrics(ctx context.Context, env, since, until, format string) (*DeliveryMetrics, error) {
	now := time.Now()
	o := metrics.Options{Env: env, Until: now}
	var err error
	if o.Since, err = metrics.ParseSince(since, now); err != nil {
		return nil, err
	}
	if until != "" {
		if o.Until, err = time.Parse(time.RFC3339, until); err != nil {
			return nil, fmt.Errorf("--until %q: want an RFC 3339 time", until)
		}
	}
	if env != "" {
		if err := bump.CheckEnv(env); err != nil {
			return nil, err
		}
	}
	render := map[string]func([]metrics.Env) string{
		"markdown": func(e []metrics.Env) string { return metrics.Markdown(e, o) }, "json": metrics.JSON, "csv": metrics.CSV}[format]
	if render == nil {
		return nil, fmt.Errorf("--format %q: want markdown, json or csv", format)
	}
	g, err := m.gitOptions(ctx, "metrics reads the GitOps repository")
	if err != nil {
		return nil, err
	}
	envs, err := metrics.Collect(ctx, g, o, 0)
	if err != nil {
		return nil, err
	}
	charts := dag.Directory()
	for _, e := range envs {
		charts = charts.WithNewFile(e.Env+".svg", metrics.SVG(e))
	}
	report := render(envs)
	ext := map[string]string{"markdown": "md", "json": "json", "csv": "csv"}[format]
	return &DeliveryMetrics{Report: report, Charts: charts, Files: charts.WithNewFile("metrics."+ext, report)}, nil
}

// scanGate decides from a scan's verdict.json.
func scanGate(b []byte) (string, error) {
	var v findings.Verdict
	if err := json.Unmarshal(b, &v); err != nil {
		return "", fmt.Errorf("scan-gate: not a scan verdict (verdict.json of scan … reports export): %w", err)
	}
	if !v.Pass {
		return "", errors.New(v.Reason())
	}
	return "scan gate passed", nil
}

// readRunReport reads a run report printed as JSON.
func readRunReport(body string) (*RunReport, error) {
	r, err := report.Parse([]byte(body))
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	return &RunReport{Markdown: r.Markdown(), Result: r.Result, Reason: r.Reason}, nil
}
