package argocd

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	synccommon "github.com/argoproj/gitops-engine/pkg/sync/common"
)

// verdict is what one observed state of the application means for the wait.
type verdict int

const (
	waiting verdict = iota
	done
	failed
)

// judge decides, from one observed state, whether the application runs our revision and is healthy.
// It is pure: the wait loop feeds it every state it sees.
type judge struct {
	revision string
	// matches reports whether a revision is ours or contains ours (a newer commit pushed by another run).
	matches func(rev string) (ok, contained bool)
	// requestedAt is when we asked for a sync (zero with auto-sync): an operation that started before
	// it is someone else's.
	requestedAt time.Time
	grace       time.Duration

	degradedSince time.Time
	// staleSince is set (to the operation's end) while our sync is done but its health not yet
	// re-evaluated: the wait then asks for a refresh rather than wait for the controller's next pass.
	staleSince time.Time
	contained  bool
	syncedRev  string
	syncedAt   time.Time
}

// ourOperation returns the operation state if it is the sync of our revision (or of one containing it).
func (j *judge) ourOperation(app *v1alpha1.Application) *v1alpha1.OperationState {
	op := app.Status.OperationState
	if op == nil {
		return nil
	}
	if !j.requestedAt.IsZero() && op.StartedAt.Time.Before(j.requestedAt.Truncate(time.Second)) {
		return nil
	}
	for _, rev := range operationRevisions(op) {
		if ok, _ := j.matches(rev); ok {
			return op
		}
	}
	return nil
}

func operationRevisions(op *v1alpha1.OperationState) []string {
	var revs []string
	if op.SyncResult != nil {
		revs = append(revs, op.SyncResult.Revision)
		revs = append(revs, op.SyncResult.Revisions...)
	}
	if op.Operation.Sync != nil {
		revs = append(revs, op.Operation.Sync.Revision)
		revs = append(revs, op.Operation.Sync.Revisions...)
	}
	return revs
}

// observe returns the verdict for one state, and the reason when it failed.
func (j *judge) observe(app *v1alpha1.Application, now time.Time) (verdict, string) {
	op := j.ourOperation(app)
	if op == nil {
		return waiting, ""
	}
	switch op.Phase {
	case synccommon.OperationFailed, synccommon.OperationError:
		return failed, fmt.Sprintf("sync %s: %s", strings.ToLower(string(op.Phase)), op.Message)
	case synccommon.OperationSucceeded:
	default:
		return waiting, ""
	}
	if op.FinishedAt == nil {
		return waiting, ""
	}
	sync := app.Status.Sync
	revOK, contained := j.matches(sync.Revision)
	if sync.Status != v1alpha1.SyncStatusCodeSynced || !revOK {
		return waiting, ""
	}
	if j.syncedRev == "" {
		j.syncedRev, j.syncedAt, j.contained = sync.Revision, now, contained
	}
	// Health read before the controller re-evaluated it after the operation is not trusted.
	j.staleSince = time.Time{}
	if app.Status.ReconciledAt == nil || !app.Status.ReconciledAt.Time.After(op.FinishedAt.Time) {
		j.staleSince = op.FinishedAt.Time
		return waiting, ""
	}
	switch app.Status.Health.Status {
	case "Healthy":
		return done, ""
	case "Missing":
		return failed, "health Missing after the sync succeeded"
	case "Degraded":
		if j.degradedSince.IsZero() {
			j.degradedSince = now
		}
		if now.Sub(j.degradedSince) >= j.grace {
			return failed, fmt.Sprintf("health Degraded for %s (grace %s)", now.Sub(j.degradedSince).Round(time.Second), j.grace)
		}
		return waiting, ""
	}
	j.degradedSince = time.Time{}
	return waiting, ""
}

// describe is the one-line status of an application, for progress lines and errors.
func describe(app *v1alpha1.Application) string {
	phase := "none"
	if op := app.Status.OperationState; op != nil {
		phase = string(op.Phase)
	}
	return fmt.Sprintf("operation %s, sync %s at %s, health %s", phase, app.Status.Sync.Status, short(app.Status.Sync.Revision), app.Status.Health.Status)
}

// unhealthy lists the application's resources that are not Healthy, with their messages.
func unhealthy(app *v1alpha1.Application) []string {
	var out []string
	for _, r := range app.Status.Resources {
		if r.Health == nil || r.Health.Status == "Healthy" {
			continue
		}
		s := fmt.Sprintf("%s/%s %s", r.Kind, r.Name, r.Health.Status)
		if r.Namespace != "" {
			s = fmt.Sprintf("%s/%s/%s %s", r.Kind, r.Namespace, r.Name, r.Health.Status)
		}
		if r.Health.Message != "" {
			s += ": " + r.Health.Message
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	if sha == "" {
		return "(none)"
	}
	return sha
}
