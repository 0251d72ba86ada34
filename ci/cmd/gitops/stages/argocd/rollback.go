package argocd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// Rollback undoes our change in git (a new commit, pushed) and says what to wait for instead.
type Rollback func(ctx context.Context, reason string) (*Undone, error)

// Undone is a rollback made in git: the revision to wait for and how to judge revisions against it.
// NoSync is set when nothing had to be pushed (the values were already restored).
type Undone struct {
	Revision string
	Match    func(ctx context.Context, rev string) (Match, error)
	NoSync   bool
}

// Outcome is the result of SyncOrRollback.
type Outcome struct {
	// Deployed is the wait for the revision (nil when it failed); its Outcome may be Superseded.
	Deployed *Result
	// Failure says why the revision did not deploy.
	Failure error
	// RolledBack reports a rollback; RollbackRevision is its commit, Restored the wait until it was
	// Healthy, RollbackDuration the time from the rollback's start to that end.
	RolledBack       bool
	RollbackRevision string
	Restored         *Result
	RollbackDuration time.Duration
	// RollbackSuperseded says why the rollback's wait ended superseded (a newer commit replaced the
	// restored values): no Restored, no time to restore.
	RollbackSuperseded string
}

// SyncOrRollback runs Sync; when the change fails *because of itself* (Error.Attributable: our
// operation failed, or resources it changed went Degraded) it rolls back with rollback (nil: never)
// and waits, with the same rules, until the rollback is Healthy. Timeouts, someone else's operation,
// a newer commit's failure, a deleted application and connection or auth errors never roll back.
// The returned error is non-nil whenever the change did not deploy, and reports the rollback too.
func SyncOrRollback(ctx context.Context, o Options, rollback Rollback) (*Outcome, error) {
	res, err := Sync(ctx, o)
	if err == nil && res.Outcome == Deployed && o.Verify != nil {
		if verr := o.Verify(ctx); verr != nil {
			e := &Error{App: o.App, Revision: o.Revision, Reason: "verification failed: " + verr.Error(), Phase: res.Phase,
				Sync: "Synced", Health: res.Health, Attributable: !o.NoSync}
			switch {
			case ctx.Err() != nil:
				// Cancelled (Ctrl-C, CI cancel) during the checks: a cancelled run, not a change failure.
				e.Reason, e.Attributable = "cancelled during verification: "+verr.Error(), false
			case e.Attributable && o.Blame != nil:
				ours, why := o.Blame(ctx, intent.Failure{Revision: res.SyncedRevision, Previous: res.Previous, Verification: true})
				if !ours {
					e.Reason, e.Attributable = NotOurs+": "+e.Reason+"; "+why, false
				}
			}
			err = e
		}
	}
	if err == nil {
		return &Outcome{Deployed: res}, nil
	}
	out := &Outcome{Failure: err}
	var waitErr *Error
	if rollback == nil || !errors.As(err, &waitErr) {
		return out, err
	}
	if !waitErr.Attributable {
		o.log("not rolling back: the failure is not attributable to our change")
		return out, fmt.Errorf("%w (not attributable to our change: nothing rolled back)", err)
	}
	if ctx.Err() != nil {
		// Never roll back on behalf of a run that was cancelled.
		return out, fmt.Errorf("%w (the run was cancelled: nothing rolled back)", err)
	}
	o.log("rolling back: %v", err)
	start := time.Now()
	ctx, span := telemetry.Start(ctx, "argocd.rollback", telemetry.Attr("argocd.app", o.App), telemetry.Attr("argocd.revision", o.Revision))
	undone, rerr := rollback(ctx, err.Error())
	if rerr != nil {
		telemetry.End(span, rerr)
		return out, fmt.Errorf("%w; rollback failed: %v", err, rerr)
	}
	span.SetAttributes(telemetry.Attr("argocd.rollback_revision", undone.Revision))
	out.RolledBack, out.RollbackRevision = true, undone.Revision
	o.Revision, o.Match, o.NoSync = undone.Revision, undone.Match, undone.NoSync
	o.Blame = nil // the rollback is not rolled back: its failures are only reported
	o.RunID += "-rollback"
	o.Verify = nil      // the restored version is waited for until Healthy; its checks are the next deploy's
	o.Refreshed = false // the rollback's commit is new: Argo CD is asked to compare against it now
	if o.Rollouts != nil {
		// Back to the stable version: a pause on the way is resumed without checks.
		ro := *o.Rollouts
		ro.Check, ro.Manual = nil, false
		o.Rollouts = &ro
	}
	restored, serr := Sync(context.WithoutCancel(ctx), o)
	out.RollbackDuration = time.Since(start)
	telemetry.End(span, serr)
	if serr != nil {
		return out, fmt.Errorf("%w; rolled back with %s, which did not become Healthy either: %v", err, short(undone.Revision), serr)
	}
	if restored.Outcome == Superseded {
		// A newer commit replaced the rollback's values: nothing was restored by us.
		out.RollbackSuperseded = restored.Reason
		return out, fmt.Errorf("%w; rolled back with %s, which was superseded: %s", err, short(undone.Revision), restored.Reason)
	}
	out.Restored = restored
	return out, fmt.Errorf("%w; rolled back with %s, Healthy after %s", err, short(undone.Revision), restored.Healthy.Round(time.Millisecond))
}

func (o Options) log(format string, args ...any) {
	if o.Log != nil {
		o.Log(fmt.Sprintf(format, args...))
	}
}
