package main

// The pipeline's GitOps half, as the module runs it: one request (ci/gitops) in, one result out.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"

	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/argocd"
	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/deploy"
	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/keyless"
	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// errRunFailed says the run failed and its result, report included, is on stdout.
var errRunFailed = errors.New("the run failed (its result is on stdout)")

// serve runs one request of the module and writes its result on out. A failed run returns
// errRunFailed after writing its result; a request that cannot run returns its error.
func serve(ctx context.Context, cmd, request string, getenv func(string) string, out io.Writer) error {
	var res *gitops.Result
	var err error
	switch cmd {
	case gitops.CmdDeploy:
		res, err = handle(ctx, request, getenv, serveDeploy)
	case gitops.CmdPromote:
		res, err = handle(ctx, request, getenv, servePromote)
	case gitops.CmdSync:
		res, err = handle(ctx, request, getenv, serveSync)
	case gitops.CmdCanary:
		res, err = handle(ctx, request, getenv, serveCanary)
	case gitops.CmdAttest:
		res, err = handle(ctx, request, getenv, serveAttest)
	case gitops.CmdVerifyEvidence:
		res, err = handle(ctx, request, getenv, serveVerifyEvidence)
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	if res == nil {
		return err
	}
	if err != nil {
		res.Error = err.Error()
	}
	b, jerr := json.Marshal(res)
	if jerr != nil {
		return jerr
	}
	if _, werr := fmt.Fprintln(out, string(b)); werr != nil {
		return werr
	}
	if err != nil {
		return errRunFailed
	}
	return nil
}

// handle decodes a request of type T (unknown fields refused) and serves it; a request that does
// not decode has no result.
func handle[T any](ctx context.Context, request string, getenv func(string) string,
	serve func(context.Context, T, func(string) string) (*gitops.Result, error)) (*gitops.Result, error) {
	var q T
	if err := gitops.ReadRequest(request, &q); err != nil {
		return nil, err
	}
	return serve(ctx, q, getenv)
}

// gitOptions are the GitOps repository's options, with the token from the environment.
func gitOptions(c gitops.Config, getenv func(string) string) git.Options {
	return git.Options{URL: c.Repo, Branch: c.Branch, Auth: git.Auth{Username: c.GitUser, Token: getenv(gitops.EnvGitToken)}, Log: logf}
}

// argoOptions are Argo CD's options for app.
func argoOptions(c gitops.Config, app string, timeout int, getenv func(string) string) (*argocd.Options, error) {
	if err := gitops.CheckTimeout(timeout); err != nil {
		return nil, err
	}
	if err := c.ArgoCD.Check(); err != nil {
		return nil, err
	}
	a := c.ArgoCD
	return &argocd.Options{Server: a.Server, Token: getenv(gitops.EnvArgoCDToken), PlainText: a.PlainText, Insecure: a.Insecure,
		GRPCWeb: a.GRPCWeb, App: app, AppNamespace: a.AppNamespace, RepoURL: a.RepoURL, Timeout: time.Duration(timeout) * time.Second, Log: logf}, nil
}

// notifyOptions are the SMTP settings (nil without a host).
func notifyOptions(c gitops.Config, getenv func(string) string) (*notify.Options, error) {
	if c.SMTP.Host == "" {
		return nil, nil
	}
	s := c.SMTP
	o := &notify.Options{Host: s.Host, Port: s.Port, TLS: s.TLS, Username: s.Username, Password: getenv(gitops.EnvSMTPPassword), From: s.From, To: s.To}
	return o, o.Validate()
}

func registryAuth(c gitops.Config, getenv func(string) string) registry.Auth {
	return registry.Auth{Username: c.RegistryUser, Password: getenv(gitops.EnvRegistryPassword), Host: c.Registry}
}

// gate is the evidence gate of a request (nil: none).
func gate(e *gitops.Evidence) (*deploy.Evidence, error) {
	switch {
	case e == nil:
		return nil, nil
	case e.AllowUnverified != "":
		return &deploy.Evidence{AllowUnverified: e.AllowUnverified}, nil
	}
	v, err := checker(*e)
	if err != nil {
		return nil, err
	}
	return &deploy.Evidence{Verifier: v, Policy: e.Policy()}, nil
}

// checker checks the evidence by key, or by identity when keyless (the trusted root is read, or
// fetched over TUF, before anything else happens).
func checker(e gitops.Evidence) (evidence.Checker, error) {
	if e.Keyless == nil {
		return e.Verifier()
	}
	k := e.Keyless
	tr, err := keyless.TrustedRoot([]byte(k.TrustedRoot), keyless.PublicTUF(filepath.Join(os.TempDir(), "wanderlust-tuf")))
	if err != nil {
		return nil, err
	}
	return keyless.NewChecker(tr, keyless.Identity{Subject: k.Identity, SubjectRegexp: k.IdentityRegexp, Issuer: k.Issuer, IssuerRegexp: k.IssuerRegexp})
}

// serveAttest signs one image's digest and statements keyless and stores them.
func serveAttest(ctx context.Context, q gitops.Attest, getenv func(string) string) (*gitops.Result, error) {
	raw, err := os.ReadFile(q.StatementsFile)
	if err != nil {
		return nil, fmt.Errorf("attest: statements: %w", err)
	}
	var statements []evidence.Statement
	if err := json.Unmarshal(raw, &statements); err != nil {
		return nil, fmt.Errorf("attest: statements: %w", err)
	}
	k := q.Keyless
	var tr root.TrustedMaterial
	if k.TrustedRoot != "" {
		if tr, err = keyless.TrustedRoot([]byte(k.TrustedRoot), nil); err != nil {
			return nil, err
		}
	}
	s, err := keyless.NewSigner(keyless.SignOptions{Services: keyless.Services{FulcioURL: k.FulcioURL, RekorURL: k.RekorURL, TSAURL: k.TSAURL},
		Token:       keyless.TokenSource{Token: getenv(gitops.EnvOIDCToken), RequestURL: getenv(gitops.EnvOIDCRequestURL), RequestToken: getenv(gitops.EnvOIDCRequestToken)},
		TrustedRoot: tr})
	if err != nil {
		return nil, err
	}
	att, err := s.Attach(ctx, q.Image, statements, evidence.Remote{Auth: registryAuth(q.Config, getenv)})
	if err != nil {
		return nil, err
	}
	return &gitops.Result{Attached: att}, nil
}

// serveVerifyEvidence is verify-evidence by identity: the report's lines, and PASS or FAIL.
func serveVerifyEvidence(ctx context.Context, q gitops.VerifyEvidence, getenv func(string) string) (*gitops.Result, error) {
	c, err := checker(q.Evidence)
	if err != nil {
		return nil, err
	}
	rep, err := evidence.Verify(ctx, q.Image, c, q.Evidence.Policy(), evidence.Remote{Auth: registryAuth(q.Config, getenv)})
	if err != nil {
		return nil, err
	}
	out := rep.Image + "\n" + rep.Summary()
	if err := rep.Err(); err != nil {
		return &gitops.Result{Output: out + "\nFAIL"}, err
	}
	return &gitops.Result{Output: out + "\nPASS"}, nil
}

// deployOptions turns a deploy request into the stage's options.
func deployOptions(q gitops.Deploy, getenv func(string) string) (*deploy.Options, error) {
	commitTime, err := gitops.SourceCommitTime(q.SourceCommitTime)
	if err != nil {
		return nil, err
	}
	o := &deploy.Options{Images: q.Images, Registry: registryAuth(q.Config, getenv), PinDigest: q.PinDigest, DryRun: q.DryRun,
		Rollback: q.Rollback, SourceCommitTime: commitTime, SkipVerify: q.SkipVerify, RunID: q.RunID, Webhook: getenv(gitops.EnvWebhookURL),
		Bump: bump.Options{Env: q.Env, SourceCommit: q.SourceCommit, Git: gitOptions(q.Config, getenv), SkipCI: q.SkipCI}}
	switch {
	case q.NoSync:
	case q.ArgoCD.Server == "":
		return nil, gitops.ErrNoArgoCD
	default:
		if o.Argo, err = argoOptions(q.Config, cmp.Or(q.App, "wanderlust-"+q.Env), q.TimeoutSeconds, getenv); err != nil {
			return nil, err
		}
	}
	if o.Notify, err = notifyOptions(q.Config, getenv); err != nil {
		return nil, err
	}
	if o.Probe, o.CanaryProbe, err = checks(q.Verify, q.Canary); err != nil {
		return nil, err
	}
	o.CanarySteps = q.CanarySteps
	if o.Evidence, err = gate(q.Evidence); err != nil {
		return nil, err
	}
	return o, nil
}

// checks are a request's checks: after Healthy (Verify), and at each pause of its Argo Rollouts
// (Verify's settings against the canary URLs when given).
func checks(v probe.Flags, c gitops.Canary) (after, atPauses *probe.Options, err error) {
	if after, err = v.Options(logf); err != nil {
		return nil, nil, err
	}
	if atPauses, err = c.CanaryChecks(v).Options(logf); err != nil {
		return nil, nil, err
	}
	return after, atPauses, nil
}

// serveDeploy runs one phase of a deploy. Every phase ends with a report; a failed one is recorded
// and mailed (deploy.Finish), like any failed run.
func serveDeploy(ctx context.Context, q gitops.Deploy, getenv func(string) string) (*gitops.Result, error) {
	rep := q.Report
	if rep == nil {
		rep = report.New("Wanderlust deploy", q.Env)
	}
	o, err := deployOptions(q, getenv)
	if err != nil {
		return nil, err
	}
	switch q.Phase {
	case gitops.PhasePreflight:
		sctx, end := rep.Start(ctx, "preflight")
		err := deploy.Check(sctx, o)
		end(nil, err)
		if err != nil {
			deploy.Finish(ctx, *o, rep, err)
		}
		return &gitops.Result{Report: rep}, err
	case gitops.PhaseFailed:
		err := errors.New(cmp.Or(q.Error, "a container stage failed"))
		deploy.Finish(ctx, *o, rep, err)
		return &gitops.Result{Report: rep}, err
	case gitops.PhaseRun:
		// Checked again (nothing is pushed before it): the repository or Argo CD may have changed
		// while the module built; a failure is the preflight's.
		if err := deploy.Check(ctx, o); err != nil {
			_, end := rep.Start(ctx, "preflight")
			end(nil, err)
			deploy.Finish(ctx, *o, rep, err)
			return &gitops.Result{Report: rep}, err
		}
		rep, err := deploy.Run(ctx, *o, rep)
		return &gitops.Result{Report: rep}, err
	}
	return nil, fmt.Errorf("deploy: unknown phase %q", q.Phase)
}

func servePromote(ctx context.Context, q gitops.Promote, getenv func(string) string) (*gitops.Result, error) {
	ao, err := argoOptions(q.Config, cmp.Or(q.ToApp, "wanderlust-"+q.To), q.TimeoutSeconds, getenv)
	if err != nil {
		return nil, err
	}
	n, err := notifyOptions(q.Config, getenv)
	if err != nil {
		return nil, err
	}
	p, cp, err := checks(q.Verify, q.Canary)
	if err != nil {
		return nil, err
	}
	g, err := gate(&q.Evidence)
	if err != nil {
		return nil, err
	}
	rep, err := deploy.Promote(ctx, deploy.PromoteOptions{From: q.From, To: q.To, Git: gitOptions(q.Config, getenv), Argo: *ao,
		FromApp: cmp.Or(q.FromApp, "wanderlust-"+q.From), ToApp: ao.App, Rollback: q.Rollback, Notify: n, Probe: p,
		CanarySteps: q.CanarySteps, CanaryProbe: cp,
		Webhook: getenv(gitops.EnvWebhookURL), Evidence: g, Registry: registryAuth(q.Config, getenv)})
	return &gitops.Result{Report: rep}, err
}

func serveSync(ctx context.Context, q gitops.Sync, getenv func(string) string) (*gitops.Result, error) {
	ao, err := argoOptions(q.Config, q.App, q.TimeoutSeconds, getenv)
	if err != nil {
		return nil, err
	}
	ao.Revision, ao.RunID = q.Revision, q.RunID
	ao.DegradedGrace = time.Duration(q.DegradedGrace) * time.Second
	var g git.Options
	if q.Repo != "" {
		g = gitOptions(q.Config, getenv)
	}
	p, err := q.Verify.Options(logf)
	if err != nil {
		return nil, err
	}
	out, err := deploy.Sync(ctx, deploy.SyncOptions{Argo: *ao, Git: g, Rollback: q.Rollback, Probe: p, AllowOlder: q.AllowOlder})
	if err != nil {
		return &gitops.Result{}, err
	}
	r := out.Deployed
	if r.Outcome == argocd.Superseded {
		return &gitops.Result{Output: fmt.Sprintf("%s: superseded: %s", r.App, r.Reason)}, nil
	}
	return &gitops.Result{Output: fmt.Sprintf("%s: Synced and Healthy at %s (refresh %s, operation %s, synced %s, healthy %s)",
		r.App, r.SyncedRevision, r.Refresh.Round(time.Millisecond), r.OperationStart.Round(time.Millisecond),
		r.Synced.Round(time.Millisecond), r.Healthy.Round(time.Millisecond))}, nil
}

// serveCanary continues (promote-canary) or undoes (abort-canary) an environment's paused canary.
func serveCanary(ctx context.Context, q gitops.ContinueCanary, getenv func(string) string) (*gitops.Result, error) {
	ao, err := argoOptions(q.Config, cmp.Or(q.App, "wanderlust-"+q.Env), q.TimeoutSeconds, getenv)
	if err != nil {
		return nil, err
	}
	n, err := notifyOptions(q.Config, getenv)
	if err != nil {
		return nil, err
	}
	p, cp, err := checks(q.Verify, q.Canary)
	if err != nil {
		return nil, err
	}
	rep, err := deploy.Continue(ctx, deploy.CanaryOptions{Env: q.Env, Git: gitOptions(q.Config, getenv), Argo: *ao, Abort: q.Abort,
		Probe: p, CanaryProbe: cp, Notify: n, Webhook: getenv(gitops.EnvWebhookURL)})
	return &gitops.Result{Report: rep}, err
}
