package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/record"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// rolloutsFor is how the wait passes the pauses of our Rollouts: the checks of p (nil: none) at
// each, or a stop at the first (manual); each step becomes a stage of the report ("step N"), with
// the Rollouts' steps and weights, the time it took and the checks' results.
func rolloutsFor(steps string, p *probe.Options, given *argocd.RolloutOptions, r *report.Run) *argocd.RolloutOptions {
	ro := &argocd.RolloutOptions{Manual: steps == CanaryManual}
	if given != nil {
		*ro = *given
		ro.Manual = ro.Manual || steps == CanaryManual
	}
	checks := map[int]map[string]string{}
	if p != nil && ro.Check == nil {
		ro.Check = func(ctx context.Context, s argocd.Step) error {
			res, err := probe.Run(ctx, *p)
			checks[s.N] = probeOutput(res)
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
	ro.OnStep = func(s argocd.Step) {
		out := map[string]string{"rollouts": rolloutList(s.Rollouts), "check": s.Check, "action": s.Action}
		for url, v := range checks[s.N] {
			out[url] = v
		}
		st := report.Stage{Name: fmt.Sprintf("step %d", s.N), Status: report.Succeeded, Start: s.At, Duration: s.Took, Output: out}
		switch {
		case s.Action == "stopped":
			st.Status = report.Skipped
		case strings.HasPrefix(s.Check, "failed"):
			st.Status, st.Error = report.Failed, s.Check
		}
		r.Stages = append(r.Stages, st)
		if given != nil && given.OnStep != nil {
			given.OnStep(s)
		}
	}
	return ro
}

// rolloutList is the Rollouts of a step, as the report lists them.
func rolloutList(rs []argocd.RolloutState) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return strings.Join(out, ", ")
}

// CanaryOptions configure promote-canary and abort-canary: they carry on a canary (or a blue-green
// preview) that a deploy with --canary-steps manual left paused.
type CanaryOptions struct {
	// Env is the environment (kubernetes/overlays/<env>); Git the GitOps repository; Argo the server
	// and the environment's application.
	Env  string
	Git  git.Options
	Argo argocd.Options
	// Abort aborts the Rollouts and restores our entries in git, by field, then waits until the
	// previous version is Healthy; otherwise the pauses are passed by the checks, as deploy does.
	Abort bool
	// Probe and CanaryProbe are the checks (as deploy's).
	Probe, CanaryProbe *probe.Options
	Notify             *notify.Options
	Webhook            string
}

// ErrNotPaused is returned (wrapped) when the application has no Rollout of ours at a pause.
var ErrNotPaused = errors.New("nothing is paused")

// Continue promotes (or, with Abort, aborts) the paused canary of an environment: the change it
// carries is the newest commit that set the overlay's images at the revision Argo CD runs.
// Nothing is changed when the application is not Suspended at a pause. An abort that restored the
// previous version returns no error; its report's result is failed (the change's failure).
func Continue(ctx context.Context, o CanaryOptions) (*report.Run, error) {
	r := report.New(fmt.Sprintf("Wanderlust %s %s", verb(o.Abort), o.Env), o.Env)
	rec := &record.Deployment{}
	err := continueCanary(ctx, o, r, rec)
	if rec.Commit != "" {
		// The paused deployment's record now says how it ended: metrics count it with its outcome.
		r.Finish(err)
		rec.Result, rec.Reason = r.Result, r.Reason
		sctx, end := r.Start(context.WithoutCancel(ctx), "record")
		end(map[string]string{"note": git.NotesRef + " on " + git.Short(rec.Commit)}, record.Write(sctx, o.Git, *rec))
	}
	Finish(ctx, Options{Notify: o.Notify, Webhook: o.Webhook, Bump: bump.Options{Git: o.Git, Env: o.Env}}, r, err)
	return r, err
}

// continueCanary carries the canary on, and fills rec (from the paused deployment's record) with
// how it ended once it acted on it.
func continueCanary(ctx context.Context, o CanaryOptions, r *report.Run, rec *record.Deployment) error {
	if err := checkCanary("", o.CanaryProbe); err != nil {
		return err
	}
	if o.Probe != nil {
		if err := o.Probe.Validate(); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
	}
	dir := manifest.EnvPath(o.Env)
	sctx, end := r.Start(ctx, "preflight")
	rd, err := git.Open(sctx, o.Git.PrefetchFor(dir))
	if err == nil {
		_, err = argocd.Preflight(sctx, o.Argo, argocd.Target{RepoURL: cmp.Or(o.Argo.RepoURL, o.Git.URL), Path: dir, Branch: branchOf(o.Git),
			DefaultBranch: rd.DefaultBranch, Rollouts: true})
	}
	var st *argocd.AppStatus
	if err == nil {
		st, err = argocd.Status(sctx, o.Argo)
	}
	if err == nil && st.Health != "Suspended" {
		err = fmt.Errorf("%s: %w: %s is %s and %s at %s", verb(o.Abort), ErrNotPaused, o.Argo.App, st.Sync, st.Health, git.Short(st.Revision))
	}
	// The change that paused: the newest commit that set one of the overlay's images.
	var change string
	if err == nil {
		var src *source
		if src, err = readSource(sctx, o.Git, st.Revision, dir); err == nil {
			for _, sha := range src.SetBy {
				if change == "" {
					change = sha
				} else if _, older, berr := rd.Between(sctx, sha, change); berr == nil && older {
					change = sha
				}
			}
			if change == "" {
				err = fmt.Errorf("%s: no commit up to %s sets the images of %s", verb(o.Abort), git.Short(st.Revision), dir)
			}
		}
	}
	var in *intent.Intent
	if err == nil {
		in, err = intent.Of(sctx, rd, change, dir)
	}
	out := map[string]string{"app": o.Argo.App}
	if st != nil {
		out["revision"], out["health"] = st.Revision, st.Health
	}
	if in != nil {
		out["change"], out["values"] = change, in.Summary()
	}
	end(out, err)
	if err != nil {
		return err
	}

	ao := o.Argo
	ao.Revision, ao.NoSync, ao.RunID = change, true, cmp.Or(ao.RunID, NewRunID())
	ao.Match = matcher(o.Git, in)
	ao.Rollouts = rolloutsFor(CanaryAuto, cmp.Or(o.CanaryProbe, o.Probe), nil, r)
	judgeByContent(ctx, &ao, o.Git, in, rd)
	if len(ao.Rollouts.Names) == 0 {
		return fmt.Errorf("%s: %w: %s changes no Argo Rollout of %s", verb(o.Abort), ErrNotPaused, git.Short(change), dir)
	}
	if o.Abort {
		// A human's decision: the pause is aborted whatever the checks would say, and it is ours.
		ao.Blame = nil
		ao.Rollouts.Check = func(context.Context, argocd.Step) error { return errors.New("abort-canary: aborted by hand") }
	}
	if d, err := record.Read(ctx, o.Git, change); err == nil && d != nil {
		*rec = *d
	} else {
		*rec = record.Deployment{Run: ao.RunID, Env: o.Env, Started: r.Started}
	}
	rec.Commit = change
	sctx, end = r.Start(ctx, "sync")
	outcome, err := argocd.SyncOrRollback(sctx, ao, rollbackFor(o.Git, in))
	if err == nil {
		now := time.Now()
		rec.Healthy = &now
	}
	out = map[string]string{"app": ao.App, "revision": change, "values": in.Summary()}
	if outcome != nil && outcome.Deployed != nil {
		out["synced"], out["health"], out["outcome"] = outcome.Deployed.SyncedRevision, outcome.Deployed.Health, outcome.Deployed.Outcome
	}
	end(out, err)
	if err != nil {
		recordFailure(err, outcome, r, rec)
		if o.Abort && r.DORA.CanaryAborted && outcome != nil && outcome.Restored != nil {
			// What was asked is done: the change is aborted and undone, the previous version Healthy.
			// The run is the change's failure, caught before full exposure; the call succeeds.
			r.Outcome(report.Failed, err.Error())
			return nil
		}
	}
	return err
}

func verb(abort bool) string {
	if abort {
		return "abort-canary"
	}
	return "promote-canary"
}
