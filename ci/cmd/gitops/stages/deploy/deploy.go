// Package deploy composes the GitOps half of the pipeline, which needs no container: verify the
// images and resolve their digests → bump the environment's manifests (commit + push) → sync Argo CD
// and wait for that commit → roll back on failure → email the run report. It also promotes what runs
// in one environment to the next. Every stage can be skipped; the report records each one.
package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/argocd"
	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/record"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/render"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// Options configure a deployment.
type Options struct {
	// Images to deploy, "repo:tag" (or "repo:tag@sha256:…"); or Updates, given as manifest updates.
	Images  []string
	Updates []manifest.Update
	// Registry logs in to verify the images; SkipVerify deploys without checking them (with the
	// reason, for the report).
	Registry   registry.Auth
	SkipVerify string
	// PinDigest writes tag@digest into the manifests (needs verification).
	PinDigest bool
	// Bump says where and how to commit (its Updates are derived from Images).
	Bump bump.Options
	// DryRun computes the manifest change and checks Argo CD, then stops: nothing is pushed, synced
	// or mailed; the report says what would have been.
	DryRun bool
	// Argo, when set, syncs and waits (its Revision is the pushed SHA); nil skips the sync.
	Argo *argocd.Options
	// Rollback reverts our change, field by field, when the rollout fails because of it.
	Rollback bool
	// Probe, when set, verifies that the application answers once it is Healthy at our values; a
	// failed check fails the deployment (and rolls it back).
	Probe *probe.Options
	// CanarySteps says how the pauses of Argo Rollouts are passed: CanaryAuto (default: the checks
	// at each pause decide, resume or abort) or CanaryManual (stop at the first pause: the result is
	// paused; promote-canary or abort-canary carries on).
	CanarySteps string
	// CanaryProbe checks the release under test at each pause (the canary's or the preview's
	// Service, --verify-canary-url); nil: Probe's checks.
	CanaryProbe *probe.Options
	// Notify, when set, emails the report whatever the result (not in a dry run).
	Notify *notify.Options
	// Webhook, when set, is an incoming-webhook URL (a secret) that gets the run's summary.
	Webhook string
	// SourceCommitTime is when the application commit was made (for the lead time).
	SourceCommitTime time.Time
	// Checked records that Check passed (Run checks otherwise); Base is the branch head Check read
	// (where a run that makes no deployment commit is recorded).
	Checked bool
	Base    string
	// RunID names the run (Deploy-Run trailer, Argo CD operation info); default NewRunID().
	RunID string
	// Evidence, when set, refuses images whose evidence does not pass, before anything is written.
	Evidence *Evidence
}

// Check validates every input and then, before anything is pushed, that the GitOps repository
// answers and has the branch, and that Argo CD answers, the token may get and sync the application,
// the application deploys the overlay from that repository and branch, and no sync window blocks it.
// It completes o.Argo with what it learned (the source of a multi-source application). Nothing is
// changed anywhere.
func Check(ctx context.Context, o *Options) error {
	if err := validate(o); err != nil {
		return err
	}
	g := o.Bump.Git.PrefetchFor(o.Bump.Dir())        // the overlay is rendered: its tree in one request
	g.MaxAttempts = min(cmp.Or(g.MaxAttempts, 3), 3) // a check: fail fast on a remote that is down
	rd, err := git.Open(ctx, g)
	if err != nil {
		return fmt.Errorf("deploy: preflight: %w", err)
	}
	o.Base = rd.Head
	if o.Argo != nil {
		// The verdict, the blame and the rollback read the overlay's `images:` entries: a layout without
		// a kustomization could be bumped but never judged nor undone — refuse it before the push.
		tree, err := rd.Tree(ctx, rd.Head)
		if err != nil {
			return fmt.Errorf("deploy: preflight: %w", err)
		}
		if _, err := manifest.Images(tree, o.Bump.Dir()); err != nil {
			return fmt.Errorf("deploy: preflight: %s cannot be deployed and watched (%v): deploy sets, judges and rolls back the images: entries of a kustomization; "+
				"add a kustomization.yaml listing the manifests as resources (kustomize create --autodetect), or use bump and sync", o.Bump.Dir(), err)
		}
		app, err := argocd.Preflight(ctx, *o.Argo, argocd.Target{RepoURL: cmp.Or(o.Argo.RepoURL, o.Bump.Git.URL), Path: o.Bump.Dir(),
			Branch: branchOf(o.Bump.Git), DefaultBranch: rd.DefaultBranch, Rollouts: rendersRollouts(tree, o.Bump.Dir())})
		if err != nil {
			return fmt.Errorf("deploy: preflight: %w", err)
		}
		o.Argo.MultiSource, o.Argo.Source, o.Argo.ManualSync = app.MultiSource, app.Source, !app.AutoSync
	}
	o.Checked = true
	return nil
}

// rendersRollouts reports whether the overlay renders Argo Rollouts (which the wait resumes and
// aborts: the preflight then checks the token may).
func rendersRollouts(tree fs.FS, dir string) bool {
	r, err := render.Render(tree, dir)
	if err != nil {
		return false
	}
	for res := range r {
		if res.Group == "argoproj.io" && res.Kind == "Rollout" {
			return true
		}
	}
	return false
}

// validate checks the inputs on their face, without any network call.
func validate(o *Options) error {
	if len(o.Images) == 0 && len(o.Updates) == 0 {
		return errors.New("deploy: no images to deploy")
	}
	bo := o.Bump
	var err error
	if bo.Updates, err = updatesOf(o.Updates, o.Images); err != nil {
		return err
	}
	if err := bo.Validate(); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if o.Argo != nil {
		if err := gitops.CheckServer(o.Argo.Server); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
		if o.Argo.Token == "" || o.Argo.App == "" {
			return errors.New("deploy: Argo CD needs a token and an application name")
		}
	}
	if o.Probe != nil {
		if err := o.Probe.Validate(); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
	}
	if o.Notify != nil {
		if err := o.Notify.Validate(); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
	}
	return checkCanary(o.CanarySteps, o.CanaryProbe)
}

// The ways of passing a canary's pauses (Options.CanarySteps).
const (
	CanaryAuto   = gitops.CanaryAuto
	CanaryManual = gitops.CanaryManual
)

// checkCanary validates the canary settings on their face.
func checkCanary(steps string, p *probe.Options) error {
	if err := (gitops.Canary{CanarySteps: steps}).Check(); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if p != nil {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("deploy: canary checks: %w", err)
		}
	}
	return nil
}

func branchOf(o git.Options) string {
	if o.Branch == "" {
		return "main"
	}
	return o.Branch
}

// Run deploys and returns the report; the error is the deployment's (a failed email is only reported).
func Run(ctx context.Context, o Options, r *report.Run) (*report.Run, error) {
	if r == nil {
		r = report.New("Wanderlust deploy", o.Bump.Env)
	}
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	if !o.SourceCommitTime.IsZero() {
		t := o.SourceCommitTime
		r.DORA.SourceCommitTime = &t
	}
	err := deployAndRecord(ctx, o, r)
	Finish(ctx, o, r, err)
	return r, err
}

// deployAndRecord deploys and leaves the outcome as a git note on the deployment's commit.
func deployAndRecord(ctx context.Context, o Options, r *report.Run) error {
	if o.RunID == "" {
		o.RunID = NewRunID()
	}
	rec := &record.Deployment{Run: o.RunID, Env: o.Bump.Env, Started: r.Started, SourceCommit: o.Bump.SourceCommit, Base: o.Base}
	if !o.SourceCommitTime.IsZero() {
		t := o.SourceCommitTime
		rec.SourceCommitTime = &t
	}
	err := run(ctx, o, r, rec)
	// The record is written even for a cancelled run (it says so), with time of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if rec.Commit != "" && !o.DryRun {
		// The outcome, as a git note on the deployment's commit (a failed record is reported only).
		r.Finish(err)
		rec.Result, rec.Reason = r.Result, r.Reason
		sctx, end := r.Start(ctx, "record")
		werr := record.Write(sctx, o.Bump.Git, *rec)
		end(map[string]string{"note": git.NotesRef + " on " + git.Short(rec.Commit)}, werr)
	}
	return err
}

// NewRunID names a run (record.NewRunID).
func NewRunID() string { return record.NewRunID() }

// Finish closes the report with err and mails it (not in a dry run). The container stages use it
// too, so that a failed scan, build or publish is mailed like a failed rollout.
func Finish(ctx context.Context, o Options, r *report.Run, err error) {
	r.Finish(err)
	// A cancelled run is still reported, with time of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if o.DryRun {
		if err == nil {
			r.Outcome(report.DryRun, "nothing was pushed, synced or mailed")
		}
		r.Skip("notify", "--dry-run")
		return
	}
	if o.Bump.Git.URL != "" && !hasStage(r, "record") {
		recordRun(ctx, o, r)
	}
	sendReport(ctx, o.Notify, r)
	if o.Webhook != "" {
		sctx, end := r.Start(ctx, "webhook")
		end(nil, notify.Webhook(sctx, o.Webhook, r))
	}
}

// recordRun leaves the record of a run that made no deployment commit (refused in preflight, a
// failed scan, build or gate, already deployed) on the branch head it started from, so that the
// pipeline's success rate counts it. A failure to record is reported, never returned.
func recordRun(ctx context.Context, o Options, r *report.Run) {
	sctx, end := r.Start(ctx, "record")
	g := o.Bump.Git
	g.MaxAttempts = min(cmp.Or(g.MaxAttempts, 2), 2) // a run that failed on an unreachable remote does not wait on it again
	base := o.Base
	if base == "" {
		rd, err := git.Open(sctx, g)
		if err != nil {
			end(nil, err)
			return
		}
		base = rd.Head
	}
	d := record.Deployment{Run: cmp.Or(o.RunID, NewRunID()), Env: o.Bump.Env, Result: r.Result, Reason: r.Reason, Started: r.Started, Base: base,
		SourceCommit: o.Bump.SourceCommit, SourceCommitTime: r.DORA.SourceCommitTime, ChangeFailed: r.DORA.Failed}
	end(map[string]string{"note": git.RunsRef + " on " + git.Short(base)}, record.WriteRun(sctx, g, base, d))
}

func hasStage(r *report.Run, name string) bool {
	for _, s := range r.Stages {
		if s.Name == name {
			return true
		}
	}
	return false
}

func run(ctx context.Context, o Options, r *report.Run, rec *record.Deployment) error {
	if !o.Checked {
		sctx, end := r.Start(ctx, "preflight")
		err := Check(sctx, &o)
		end(nil, err)
		rec.Base = o.Base
		if err != nil {
			return err
		}
	}
	refs := o.Images
	if o.SkipVerify != "" || len(refs) == 0 {
		r.Skip("verify", cmp.Or(o.SkipVerify, "no image references"))
	} else {
		sctx, end := r.Start(ctx, "verify")
		imgs, err := registry.Resolve(sctx, o.Images, o.Registry)
		out := map[string]string{}
		for _, i := range imgs {
			out[manifest.LastElem(i.Repository())] = i.Digest
			if o.PinDigest {
				refs = replace(refs, i.Ref, i.Pinned())
			}
		}
		end(out, err)
		if err != nil {
			return err
		}
	}

	bo := o.Bump
	var err error
	if bo.Updates, err = updatesOf(o.Updates, refs); err != nil {
		return err
	}
	gate := o.Evidence
	if gate != nil && gate.Policy.SourceCommit == "" && o.Bump.SourceCommit != "" {
		// The images must have been built from the commit this deployment says it deploys.
		g := *gate
		g.Policy.SourceCommit = o.Bump.SourceCommit
		gate = &g
	}
	if bo.Updates, err = checkEvidence(ctx, gate, o.Registry, bo.Updates, r); err != nil {
		return err
	}
	bo.Git.DryRun = o.DryRun
	bo.Trailers = append(bo.Trailers, record.Trailers(o.RunID, o.Bump.Env, o.SourceCommitTime)...)
	sctx, end := r.Start(ctx, "bump")
	res, err := bump.Run(sctx, bo)
	if res != nil && res.Pushed {
		rec.Commit = res.SHA
	}
	out := map[string]string{}
	if res != nil {
		out["sha"], out["changes"] = res.SHA, strings.ReplaceAll(res.Summary, "\n", "; ")
		if o.DryRun {
			out["diff"] = res.Diff
			delete(out, "sha")
		}
	}
	end(out, err)
	if err != nil {
		return err
	}
	if o.Argo == nil {
		r.Skip("sync", "--no-sync: pushed only; nothing was synced, waited for or judged (Argo CD applies the commit when it syncs)")
		return nil
	}
	if o.DryRun {
		r.Skip("sync", fmt.Sprintf("--dry-run: would wait for %s to run %s (preflight passed)", o.Argo.App, res.Summary))
		return nil
	}
	return syncAndWait(ctx, o, bo, res, r, rec)
}

// syncAndWait waits until Argo CD runs the values of the bump — decided by content — and rolls back
// our change when it fails because of it.
func syncAndWait(ctx context.Context, o Options, bo bump.Options, res *bump.Result, r *report.Run, rec *record.Deployment) error {
	ao := *o.Argo
	ao.Revision, ao.RunID = res.SHA, o.RunID
	ctx, end := r.Start(ctx, "sync")
	out := map[string]string{"app": ao.App, "revision": res.SHA}
	// An auto-sync application's hard refresh runs while the wait is prepared (the renderings of our
	// commit and its parent); a manual sync names our revision and needs none.
	refreshed := make(chan error, 1)
	if ao.ManualSync && res.Changed {
		refreshed <- errors.New("no refresh: the sync names the revision")
	} else {
		go func() { refreshed <- argocd.Refresh(ctx, ao) }()
	}
	in, rd, err := intentOf(ctx, bo, res)
	if err != nil {
		end(out, err)
		return err
	}
	out["values"] = in.Summary()
	ao.Match = matcher(bo.Git, in)
	ao.Rollouts = rolloutsFor(o.CanarySteps, cmp.Or(o.CanaryProbe, o.Probe), ao.Rollouts, r)
	if res.Changed {
		judgeByContent(ctx, &ao, bo.Git, in, rd)
		out["timeout"] = ao.Timeout.String()
	}
	ao.Refreshed = <-refreshed == nil
	var undo argocd.Rollback
	switch {
	case !res.Changed:
		// Nothing was pushed: never roll back (it would revert someone else's commit), never ask
		// for a sync; only check that the values run.
		ao.NoSync = true
		if ao.Timeout <= 0 || ao.Timeout > 30*time.Second {
			ao.Timeout = 30 * time.Second
		}
	case o.Rollback:
		undo = rollbackFor(bo.Git, in)
	}
	if o.Probe != nil {
		ao.Verify = func(ctx context.Context) error {
			vctx, end := r.Start(ctx, "verify-app")
			res, err := probe.Run(vctx, *o.Probe)
			end(probeOutput(res), err)
			rec.Verification = probeOutput(res)
			if res != nil {
				for _, c := range res.Checks {
					if c.Excerpt != "" {
						r.Respond(c.URL, c.Excerpt)
					}
				}
			}
			return err
		}
	}
	outcome, err := argocd.SyncOrRollback(ctx, ao, undo)
	if outcome != nil && outcome.Deployed != nil {
		d := outcome.Deployed
		out["synced"], out["health"], out["outcome"] = d.SyncedRevision, d.Health, d.Outcome
		if d.OurOperation {
			out["operation"] = "ours (run " + ao.RunID + ")"
		}
		switch {
		case d.Outcome == argocd.Paused:
			out["paused"] = d.Reason
			end(out, nil)
			r.Outcome(report.Paused, fmt.Sprintf("%s paused on purpose (--canary-steps manual) at %s: continue with promote-canary, or undo with abort-canary", ao.App, d.Reason))
			return nil
		case d.Outcome == argocd.Superseded && !res.Changed:
			// What we found in git was replaced while we checked it: nothing of ours ran.
			out["superseded"] = d.Reason
			end(out, nil)
			r.Outcome(report.Superseded, "superseded: "+d.Reason)
			return nil
		case d.Outcome == argocd.Superseded:
			out["superseded"] = d.Reason
			end(out, nil)
			r.Outcome(report.Superseded, "superseded: "+d.Reason)
			return nil
		case !res.Changed:
			out["outcome"] = report.AlreadyDeployed
			r.Outcome(report.AlreadyDeployed, fmt.Sprintf("%s already runs %s (Synced and Healthy at %s)", ao.App, in.Summary(), git.Short(d.SyncedRevision)))
		default:
			now := time.Now()
			rec.Healthy = &now
			out["healthy_after"] = d.Healthy.Round(time.Millisecond).String()
			if r.DORA.SourceCommitTime != nil {
				r.DORA.LeadTime = time.Since(*r.DORA.SourceCommitTime)
			}
		}
	}
	end(out, err)
	if err != nil {
		recordFailure(err, outcome, r, rec)
	}
	return err
}

// recordFailure puts a failed wait into the report and the deployment's record: whether it is a
// change failure (only a failure of the deployed change counts, for DORA; a timeout, an outage or
// someone else's failure does not), caught by a canary, not ours, and the rollback and its end.
func recordFailure(err error, outcome *argocd.Outcome, r *report.Run, rec *record.Deployment) {
	var we *argocd.Error
	r.DORA.Failed = errors.As(err, &we) && we.Attributable
	r.DORA.CanaryAborted = r.DORA.Failed && we.Aborted
	if we != nil && strings.HasPrefix(we.Reason, argocd.NotOurs) {
		r.Outcome(report.NotOurs, err.Error())
	}
	rec.ChangeFailed, rec.CanaryAborted = r.DORA.Failed, r.DORA.CanaryAborted
	failedAt := time.Now()
	if outcome != nil {
		failedAt = failedAt.Add(-outcome.RollbackDuration)
	}
	rec.FailedAt = &failedAt
	if outcome == nil || !outcome.RolledBack {
		return
	}
	rec.RolledBack, rec.Revert = true, outcome.RollbackRevision
	r.DORA.RolledBack = true
	rb := map[string]string{"revert": outcome.RollbackRevision}
	st := report.Stage{Name: "rollback", Status: report.Failed, Start: time.Now().Add(-outcome.RollbackDuration), Duration: outcome.RollbackDuration, Output: rb}
	switch {
	case outcome.RollbackSuperseded != "":
		rb["superseded"], st.Status = outcome.RollbackSuperseded, report.Superseded
	case outcome.Restored != nil:
		restored := time.Now()
		rec.Restored = &restored
		rb["health"] = outcome.Restored.Health
		r.DORA.TimeToRestore = outcome.RollbackDuration
		st.Status = report.Succeeded
	}
	r.Stages = append(r.Stages, st)
}

// judgeByContent completes the wait for a change we pushed: sync the branch head only while it
// holds our values, blame a failure on our change only when objects it changed fail as it set
// them, drive the Argo Rollouts that run what it changed (when ao.Rollouts is set), and (no
// --timeout given) wait as long as Kubernetes would before it gives up on the rollout: the largest
// progressDeadlineSeconds of the workloads our commit changes, plus the degraded grace and a
// minute for the sync itself.
func judgeByContent(ctx context.Context, ao *argocd.Options, g git.Options, in *intent.Intent, rd *git.Reader) {
	bl := in.Blamer(func(ctx context.Context) (*git.Reader, error) {
		if r := rd; r != nil {
			rd = nil // the reader the caller had, once; then the repository afresh
			return r, nil
		}
		return git.Open(ctx, g)
	})
	ao.Blame = bl.Judge
	ao.Head = headOf(g)
	changed, rendered, err := bl.Changed(ctx)
	if err != nil {
		changed = nil
	}
	if ao.Rollouts != nil {
		ao.Rollouts.Names = nil
		for _, c := range changed {
			if c.Group == "argoproj.io" && c.Kind == "Rollout" {
				ao.Rollouts.Names = append(ao.Rollouts.Names, c.Name)
			}
		}
	}
	if ao.Timeout > 0 {
		return
	}
	ao.Timeout = DefaultTimeout
	if pds := rendered.ProgressDeadline(changed); err == nil && pds > 0 {
		ao.Timeout = time.Duration(pds)*time.Second + cmp.Or(ao.DegradedGrace, 30*time.Second) + time.Minute
	}
}

// DefaultTimeout is the wait when no --timeout is given and our commit changes no workload.
const DefaultTimeout = 5 * time.Minute

// headOf reads the branch head of the GitOps repository.
func headOf(g git.Options) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		rd, err := git.Open(ctx, g)
		if err != nil {
			return "", err
		}
		return rd.Head, nil
	}
}

// SyncOptions configure the sync of a revision that is already in git (the module's sync).
type SyncOptions struct {
	Argo argocd.Options
	// Git is the GitOps repository (URL empty: no content check, no rollback; only the exact
	// revision counts).
	Git git.Options
	// Rollback undoes the revision's image entries when it fails because of them.
	Rollback bool
	// Probe verifies that the application answers once it is Healthy.
	Probe *probe.Options
	// AllowOlder syncs the revision even when the application already runs a newer commit that
	// contains it (a deliberate roll back to an older tree), and syncs exactly it rather than the
	// branch head.
	AllowOlder bool
}

// Sync checks Argo CD (preflight), then waits until the revision's values run, with the same rules
// as Run: decided by content, superseded told apart, rolled back only when it is the cause.
func Sync(ctx context.Context, o SyncOptions) (*argocd.Outcome, error) {
	if o.Rollback && o.Git.URL == "" {
		return nil, errors.New("sync: --rollback needs --repo (the GitOps repository to roll back in)")
	}
	t := argocd.Target{}
	var rd *git.Reader
	if o.Git.URL != "" {
		var err error
		if rd, err = git.Open(ctx, o.Git); err != nil {
			return nil, fmt.Errorf("sync: preflight: %w", err)
		}
		t = argocd.Target{RepoURL: cmp.Or(o.Argo.RepoURL, o.Git.URL), Branch: branchOf(o.Git), DefaultBranch: rd.DefaultBranch}
	}
	app, err := argocd.Preflight(ctx, o.Argo, t)
	if err != nil {
		return nil, fmt.Errorf("sync: preflight: %w", err)
	}
	ao := o.Argo
	ao.MultiSource, ao.Source, ao.ManualSync = app.MultiSource, app.Source, !app.AutoSync
	if o.Probe != nil {
		p := *o.Probe
		ao.Verify = func(ctx context.Context) error {
			_, err := probe.Run(ctx, p)
			return err
		}
	}
	var undo argocd.Rollback
	if rd != nil {
		if app.Running != "" && app.Running != ao.Revision && !o.AllowOlder {
			if _, older, err := rd.Between(ctx, app.Running, ao.Revision); err == nil && older {
				return nil, fmt.Errorf("sync: %s already runs %s, a newer commit than %s: refusing to sync an older tree (pass --allow-older to go back on purpose)",
					ao.App, git.Short(app.Running), git.Short(ao.Revision))
			}
		}
		in, err := intent.Of(ctx, rd, ao.Revision, app.Path)
		if err != nil {
			return nil, fmt.Errorf("sync: %w", err)
		}
		ao.Match = matcher(o.Git, in)
		// Argo Rollouts' pauses are passed by the same checks (none: resumed at once).
		ao.Rollouts = rolloutsFor(CanaryAuto, o.Probe, nil, report.New("sync", ""))
		judgeByContent(ctx, &ao, o.Git, in, rd)
		if o.AllowOlder {
			// Exactly this revision, judged by its own operation: newer commits neither stand in
			// for it nor supersede it.
			ao.Head, ao.Match, ao.Older = nil, nil, true
		}
		if o.Rollback {
			undo = rollbackFor(o.Git, in)
		}
	}
	return argocd.SyncOrRollback(ctx, ao, undo)
}

// probeOutput summarizes a probe for the report: per URL, checks, failures and latencies.
func probeOutput(res *probe.Result) map[string]string {
	out := map[string]string{}
	if res == nil {
		return out
	}
	for _, c := range res.Checks {
		v := fmt.Sprintf("%d checks, %d failed, p50 %s, max %s", c.Checks, c.Failures, c.P50Latency.Round(time.Millisecond), c.MaxLatency.Round(time.Millisecond))
		if !c.Passed {
			v += "; " + c.LastError
		}
		out[c.URL] = v
	}
	return out
}

// intentOf is what the bump means to run: the entries its commit set, or (nothing pushed) the
// entries its updates select at the head; and the reader it read them with.
func intentOf(ctx context.Context, bo bump.Options, res *bump.Result) (*intent.Intent, *git.Reader, error) {
	rd, err := git.Open(ctx, bo.Git.PrefetchFor(bo.Dir()))
	if err != nil {
		return nil, nil, err
	}
	if res.Changed {
		in, err := intent.Of(ctx, rd, res.SHA, bo.Dir())
		return in, rd, err
	}
	tree, err := rd.Tree(ctx, res.SHA)
	if err != nil {
		return nil, nil, err
	}
	in, err := intent.Current(tree, bo.Dir(), bo.Updates)
	return in, rd, err
}

// rollbackFor undoes the intent's entries field by field and waits for the rollback's own values.
func rollbackFor(g git.Options, in *intent.Intent) argocd.Rollback {
	return func(ctx context.Context, reason string) (*argocd.Undone, error) {
		gr, back, err := intent.Undo(ctx, g, in, reason)
		if err != nil {
			return nil, err
		}
		return &argocd.Undone{Revision: gr.SHA, Match: matcher(g, back), NoSync: !gr.Changed}, nil
	}
}

// matcher judges revisions against the intent, reading the GitOps repository afresh for each
// (revisions Argo CD shows may be newer than any we saw).
func matcher(g git.Options, in *intent.Intent) func(ctx context.Context, rev string) (argocd.Match, error) {
	return func(ctx context.Context, rev string) (argocd.Match, error) {
		rd, err := git.Open(ctx, g)
		if err != nil {
			return argocd.Match{}, err
		}
		v, err := in.Judge(ctx, rd, rev)
		// An older commit that holds the same values (yesterday's deploy of this version, reverted
		// since) is not ours: only our commit and later ones count.
		ours := v.Holds && (in.SHA == "" || v.Exact || v.Newer)
		return argocd.Match{Ours: ours, Exact: v.Exact, Newer: v.Newer, By: v.By, Superseded: v.Superseded}, err
	}
}

// sendReport emails the report; a failure is recorded in the report, never returned.
func sendReport(ctx context.Context, n *notify.Options, r *report.Run) {
	if n == nil {
		r.Skip("notify", "no SMTP server given")
		return
	}
	sctx, end := r.Start(ctx, "notify")
	err := notify.Send(sctx, *n, r)
	end(map[string]string{"to": strings.Join(n.To, ",")}, err)
}

// updatesOf is the bump's updates: the given ones, then one per image reference.
func updatesOf(updates []manifest.Update, refs []string) ([]manifest.Update, error) {
	out := append([]manifest.Update(nil), updates...)
	for _, ref := range refs {
		u, err := updateFor(ref)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// updateFor turns "registry/owner/name:tag[@digest]" into a manifest update for image "name".
func updateFor(ref string) (manifest.Update, error) {
	repo, digest, _ := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	// Matched by the image's name (last path element): the manifests may name another registry,
	// which newName then replaces.
	u := manifest.Update{Name: manifest.LastElem(repo), NewName: repo, Tag: tag, Digest: digest}
	if err := u.Validate(); err != nil {
		return u, fmt.Errorf("deploy: image %q: %w", ref, err)
	}
	return u, nil
}

func replace(list []string, old, new string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		if s == old {
			s = new
		}
		out[i] = s
	}
	return out
}

// agreed is the value that every image has in values ("" when one has none or two differ).
func agreed(imgs []manifest.Image, values map[string]string) string {
	v := ""
	for n, i := range imgs {
		x := values[i.Name]
		if x == "" || (n > 0 && x != v) {
			return ""
		}
		v = x
	}
	return v
}

// PromoteOptions configure a promotion from one environment's overlay to the next's.
type PromoteOptions struct {
	// From and To are environments (kubernetes/overlays/<env>).
	From, To string
	// Git is the GitOps repository.
	Git git.Options
	// Argo is the Argo CD server; FromApp and ToApp are the applications of the two environments
	// (ToApp is synced).
	Argo           argocd.Options
	FromApp, ToApp string
	Rollback       bool
	Notify         *notify.Options
	Webhook        string
	Message        string
	// Probe verifies the target application once it is Healthy (as deploy's); CanarySteps and
	// CanaryProbe pass the pauses of its Argo Rollouts (as deploy's).
	Probe       *probe.Options
	CanarySteps string
	CanaryProbe *probe.Options
	// Evidence is the gate on the promoted images (nil: none); Registry logs in to read it.
	Evidence *Evidence
	Registry registry.Auth
}

// Promote copies the exact images (digests where the source pins them) that the source environment
// runs into the target's overlay, commits, pushes and syncs the target. It refuses to promote what is
// not Synced and Healthy in the source environment.
func Promote(ctx context.Context, o PromoteOptions) (*report.Run, error) {
	r := report.New(fmt.Sprintf("Wanderlust promote %s → %s", o.From, o.To), o.To)
	err := promote(ctx, o, r)
	Finish(ctx, Options{Notify: o.Notify, Webhook: o.Webhook, Bump: bump.Options{Git: o.Git, Env: o.To}}, r, err)
	return r, err
}

func promote(ctx context.Context, o PromoteOptions, r *report.Run) error {
	sctx, end := r.Start(ctx, "check-source")
	src := o.Argo
	src.App = o.FromApp
	st, err := argocd.Status(sctx, src)
	if err == nil && (st.Sync != "Synced" || st.Health != "Healthy") {
		err = fmt.Errorf("promote: %s is %s and %s, not Synced and Healthy: refusing to promote it", o.FromApp, st.Sync, st.Health)
	}
	out := map[string]string{}
	if st != nil {
		out["sync"], out["health"], out["revision"] = st.Sync, st.Health, st.Revision
	}
	end(out, err)
	if err != nil {
		return err
	}

	// What the source runs: its overlay at the revision Argo CD synced, with the application commits
	// they were deployed as (what their provenance must name, and the promotion's own Source-Commit
	// when they agree).
	sctx, end = r.Start(ctx, "read-source")
	runs, err := readSource(sctx, o.Git, st.Revision, manifest.EnvPath(o.From))
	out = map[string]string{}
	var imgs []manifest.Image
	var sources map[string]string
	if runs != nil {
		imgs, sources = runs.Images, runs.Commits
	}
	var updates []manifest.Update
	for _, i := range imgs {
		out[manifest.LastElem(i.Name)] = i.Ref()
		if runs.SetBy[i.Name] != "" {
			out[manifest.LastElem(i.Name)] += fmt.Sprintf(" (set by %s, source commit %s)", git.Short(runs.SetBy[i.Name]), cmp.Or(sources[i.Name], "not recorded"))
		}
		// Exactly what the source runs: its repository too (a target's own newName must not stay).
		updates = append(updates, i.Update())
	}
	if err == nil && len(updates) == 0 {
		err = fmt.Errorf("promote: %s lists no images", manifest.EnvPath(o.From))
	}
	end(out, err)
	if err != nil {
		return err
	}
	// The promotion carries on the application commit and its time when every image agrees.
	source, when := agreed(imgs, sources), agreed(imgs, runs.Times)
	var commitTime time.Time
	if when != "" && source != "" {
		if commitTime, err = time.Parse(time.RFC3339, when); err == nil {
			r.DORA.SourceCommitTime = &commitTime
		}
	}
	gate := o.Evidence
	if gate != nil && gate.AllowUnverified == "" && gate.Policy.SourceCommit == "" {
		g := *gate
		g.SourceCommits = sources
		gate = &g
	}
	ao := o.Argo
	ao.App = o.ToApp
	return deployAndRecord(ctx, Options{
		Updates: updates, SkipVerify: "promoting the references that run in " + o.From, SourceCommitTime: commitTime,
		Bump: bump.Options{Git: o.Git, Env: o.To, Message: o.Message, SourceCommit: source},
		Argo: &ao, Rollback: o.Rollback, Probe: o.Probe, Evidence: gate, Registry: o.Registry, CanarySteps: o.CanarySteps, CanaryProbe: o.CanaryProbe,
	}, r)
}
