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

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/build"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/deploy"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/metrics"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/publish"
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

// argoOptions are Argo CD's options for app, with the token read.
func (m *Wanderlust) argoOptions(ctx context.Context, app string, timeout int) (*argocd.Options, error) {
	if timeout < 0 {
		return nil, fmt.Errorf("--timeout %d: want a positive number of seconds (or none: derived from the rollout)", timeout)
	}
	token, err := plaintext(ctx, m.ArgocdToken)
	if err != nil {
		return nil, err
	}
	return &argocd.Options{Server: m.ArgocdServer, Token: token, PlainText: m.ArgocdPlainText, Insecure: m.ArgocdInsecure,
		GRPCWeb: m.ArgocdGrpcWeb, App: app, AppNamespace: m.AppNamespace, Timeout: time.Duration(timeout) * time.Second, Log: logf}, nil
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

// verifyFlags are the post-deploy verification flags of deploy, promote and sync.
type verifyFlags struct {
	urls                                     []string
	status, body, maxLatency, soak, interval string
	insecure                                 bool
}

// probeOptions turns the verification flags into probe options (nil without --verify-url).
func (v verifyFlags) probeOptions() (*probe.Options, error) {
	if len(v.urls) == 0 {
		return nil, nil
	}
	o := &probe.Options{URLs: v.urls, Status: v.status, Body: v.body, Insecure: v.insecure, Log: logf}
	for _, d := range []struct {
		flag, value string
		into        *time.Duration
	}{{"--verify-max-latency", v.maxLatency, &o.MaxLatency}, {"--verify-for", v.soak, &o.For}, {"--verify-interval", v.interval, &o.Interval}} {
		if d.value == "" {
			continue
		}
		dur, err := time.ParseDuration(d.value)
		if err != nil || dur < 0 {
			return nil, fmt.Errorf("%s %q: want a duration such as 30s or 500ms", d.flag, d.value)
		}
		*d.into = dur
	}
	return o, o.Validate()
}

// webhook reads the webhook URL secret ("" without).
func (m *Wanderlust) webhook(ctx context.Context) (string, error) {
	return plaintext(ctx, m.WebhookURL)
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

func (m *Wanderlust) sync(ctx context.Context, app, revision string, timeout, degradedGrace int, rollback, allowOlder bool, runID string, v verifyFlags) (string, error) {
	if err := need(m.ArgocdServer, "argocd-server", "sync talks to Argo CD"); err != nil {
		return "", err
	}
	if err := argocd.CheckAddress(m.ArgocdServer); err != nil {
		return "", err
	}
	ao, err := m.argoOptions(ctx, app, timeout)
	if err != nil {
		return "", err
	}
	ao.Revision, ao.RunID = revision, runID
	ao.DegradedGrace = time.Duration(degradedGrace) * time.Second
	var g git.Options
	if m.Repo != "" {
		if g, err = m.gitOptions(ctx, ""); err != nil {
			return "", err
		}
	}
	p, err := v.probeOptions()
	if err != nil {
		return "", err
	}
	out, err := deploy.Sync(ctx, deploy.SyncOptions{Argo: *ao, Git: g, Rollback: rollback, Probe: p, AllowOlder: allowOlder})
	if err != nil {
		return "", err
	}
	r := out.Deployed
	if r.Outcome == argocd.Superseded {
		return fmt.Sprintf("%s: superseded: %s", r.App, r.Reason), nil
	}
	return fmt.Sprintf("%s: Synced and Healthy at %s (refresh %s, operation %s, synced %s, healthy %s)",
		r.App, r.SyncedRevision, r.Refresh.Round(time.Millisecond), r.OperationStart.Round(time.Millisecond),
		r.Synced.Round(time.Millisecond), r.Healthy.Round(time.Millisecond)), nil
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
	verify                                verifyFlags
	requireEvidence                       bool
	evidenceFailOn                        string
}

// deployOptions turns the configuration and deploy's flags into deploy options. Flags that can be
// checked without the network are checked here; deploy.Check does the rest.
func (m *Wanderlust) deployOptions(ctx context.Context, f deployFlags) (*deploy.Options, error) {
	var commitTime time.Time
	if f.sourceCommitTime != "" {
		t, err := time.Parse(time.RFC3339, f.sourceCommitTime)
		if err != nil {
			return nil, fmt.Errorf("--source-commit-time %q: want RFC 3339, e.g. 2026-11-28T09:30:00Z", f.sourceCommitTime)
		}
		commitTime = t
	}
	g, err := m.gitOptions(ctx, "deploy commits to the GitOps repository")
	if err != nil {
		return nil, err
	}
	auth, err := m.registryAuth(ctx)
	if err != nil {
		return nil, err
	}
	o := &deploy.Options{Registry: auth, PinDigest: f.pinDigest, DryRun: f.dryRun, Rollback: f.rollback, SourceCommitTime: commitTime,
		Bump: bump.Options{Env: f.env, SourceCommit: f.sourceCommit, Git: g, SkipCI: f.skipCI}}
	switch {
	case f.noSync:
		// Push only (o.Argo stays nil): the report says nothing was waited for.
	case m.ArgocdServer == "":
		return nil, errors.New("deploy needs Argo CD to sync, judge and roll back: give --argocd-server and --argocd-token (an empty server, e.g. an unset CI variable, is not taken for \"skip the sync\"), or pass --no-sync to push only")
	default:
		if o.Argo, err = m.argoOptions(ctx, cmp.Or(f.app, "wanderlust-"+f.env), f.timeout); err != nil {
			return nil, err
		}
	}
	if o.Notify, err = m.notifyOptions(ctx); err != nil {
		return nil, err
	}
	if o.Probe, err = f.verify.probeOptions(); err != nil {
		return nil, err
	}
	if o.Webhook, err = m.webhook(ctx); err != nil {
		return nil, err
	}
	if o.Evidence, err = m.gate(ctx, f.requireEvidence, evidenceFlags{sourceCommit: f.sourceCommit, failOn: f.evidenceFailOn}, "or deploy without --require-evidence"); err != nil {
		return nil, err
	}
	return o, nil
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
	o, err := m.deployOptions(ctx, f)
	if err != nil {
		return "", err
	}
	o.Images = images
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
	rep := report.New("Wanderlust deploy", f.env)
	if build && f.dryRun {
		o.SkipVerify = "--dry-run: the built images are not pushed"
		if o.Evidence != nil {
			o.Evidence = nil
			rep.Skip("evidence", "--dry-run: the built images are not pushed, so there is no evidence to check yet")
		}
	}
	// Everything is checked before the first side effect: nothing is built, pushed or synced when an
	// input, the repository or Argo CD is wrong.
	sctx, end := rep.Start(ctx, "preflight")
	err = deploy.Check(sctx, o)
	end(nil, err)
	if err != nil {
		deploy.Finish(ctx, *o, rep, err) // mailed (when the mail settings are valid), like any failed run
		return "", fmt.Errorf("%w\n\nnothing was built, pushed or synced\n\n%s", err, render(rep))
	}
	if build {
		refs, err := m.buildAndPublish(ctx, rep, f, ev)
		if err != nil {
			deploy.Finish(ctx, *o, rep, err) // the failure is mailed like a failed rollout
			return "", fmt.Errorf("%w\n\n%s", err, render(rep))
		}
		o.Images = refs
	} else {
		for _, s := range []string{"scan", "build", "publish"} {
			rep.Skip(s, "--backend-tag and --frontend-tag given")
		}
	}
	rep, err = deploy.Run(ctx, *o, rep)
	if err != nil {
		return "", fmt.Errorf("%w\n\n%s", err, render(rep))
	}
	return render(rep), nil
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

func (m *Wanderlust) promote(ctx context.Context, from, to, fromApp, toApp string, rollback bool, timeout int, reportFormat string, ef evidenceFlags, v verifyFlags) (string, error) {
	render, err := renderer(reportFormat)
	if err != nil {
		return "", err
	}
	if err := need(m.ArgocdServer, "argocd-server", "promote checks and syncs Argo CD applications"); err != nil {
		return "", err
	}
	for _, env := range []string{from, to} {
		if err := bump.CheckEnv(env); err != nil {
			return "", err
		}
	}
	g, err := m.gitOptions(ctx, "promote commits to the GitOps repository")
	if err != nil {
		return "", err
	}
	ao, err := m.argoOptions(ctx, cmp.Or(toApp, "wanderlust-"+to), timeout)
	if err != nil {
		return "", err
	}
	n, err := m.notifyOptions(ctx)
	if err != nil {
		return "", err
	}
	p, err := v.probeOptions()
	if err != nil {
		return "", err
	}
	hook, err := m.webhook(ctx)
	if err != nil {
		return "", err
	}
	gate, err := m.gate(ctx, true, ef, `to promote without it, --allow-unverified "reason"`)
	if err != nil {
		return "", err
	}
	auth, err := m.registryAuth(ctx)
	if err != nil {
		return "", err
	}
	rep, err := deploy.Promote(ctx, deploy.PromoteOptions{From: from, To: to, Git: g, Argo: *ao,
		FromApp: cmp.Or(fromApp, "wanderlust-"+from), ToApp: ao.App, Rollback: rollback, Notify: n, Probe: p, Webhook: hook,
		Evidence: gate, Registry: auth})
	if err != nil {
		return "", fmt.Errorf("%w\n\n%s", err, render(rep))
	}
	return render(rep), nil
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
		r = &report.Run{}
		if err := json.Unmarshal([]byte(body), r); err != nil || r.Title == "" {
			return "", fmt.Errorf("--report: not a run report in JSON (deploy --report-format json): %v", err)
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
