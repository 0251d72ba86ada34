package argocd

import (
	"context"
	"errors"
	"fmt"
)

// Rollback undoes the deployment's commit (a revert commit, pushed) and returns the revert's SHA.
type Rollback func(ctx context.Context, reason string) (string, error)

// Outcome is the result of SyncOrRollback.
type Outcome struct {
	// Deployed is the wait for the revision (nil when it failed).
	Deployed *Result
	// Failure says why the revision did not deploy.
	Failure error
	// RolledBack reports a rollback; RollbackRevision is the revert commit and Restored the wait
	// until it was Healthy.
	RolledBack       bool
	RollbackRevision string
	Restored         *Result
}

// SyncOrRollback runs Sync; when the revision fails to become Healthy it rolls back with rollback
// (nil: no rollback) and waits, with the same rules, until the revert is Healthy. The returned error
// is non-nil whenever the revision did not deploy, and reports the rollback too.
func SyncOrRollback(ctx context.Context, o Options, rollback Rollback) (*Outcome, error) {
	res, err := Sync(ctx, o)
	if err == nil {
		return &Outcome{Deployed: res}, nil
	}
	out := &Outcome{Failure: err}
	var waitErr *Error
	if rollback == nil || !errors.As(err, &waitErr) {
		return out, err // nothing to roll back to, or we never got to watch (auth, connection, input)
	}
	o.log("rolling back: %v", err)
	sha, rerr := rollback(ctx, err.Error())
	if rerr != nil {
		return out, fmt.Errorf("%w; rollback failed: %v", err, rerr)
	}
	out.RolledBack, out.RollbackRevision = true, sha
	o.Revision = sha
	o.RunID += "-rollback"
	restored, serr := Sync(context.WithoutCancel(ctx), o)
	if serr != nil {
		return out, fmt.Errorf("%w; rolled back with %s, which did not become Healthy either: %v", err, short(sha), serr)
	}
	out.Restored = restored
	return out, fmt.Errorf("%w; rolled back with %s, Healthy after %s", err, short(sha), restored.Healthy.Round(1e6))
}

func (o Options) log(format string, args ...any) {
	if o.Log != nil {
		o.Log(fmt.Sprintf(format, args...))
	}
}
