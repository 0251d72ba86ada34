package argocd

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	synccommon "github.com/argoproj/gitops-engine/pkg/sync/common"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/render"
)

// verdict is what one observed state of the application means for the wait.
type verdict int

const (
	waiting verdict = iota
	done
	failed
	superseded
	// suspended: our values run and the application is Suspended (a Rollout at a pause, maybe ours).
	suspended
	// pausedAt: our Rollouts stopped at a pause on purpose (manual steps).
	pausedAt
)

// Match is how a revision that Argo CD shows relates to the change we wait for. The wait decides
// "done" by content: the revision must hold the values our change wrote, whichever commit it is.
type Match struct {
	// Ours: the revision runs our values and is our commit or a later one (an older commit that
	// happens to hold the same values — yesterday's deploy of the same version — is not ours).
	Ours bool
	// Exact: it is our commit.
	Exact bool
	// Newer: it is a newer commit that contains ours; By then names the commits on top of ours.
	Newer bool
	By    string
	// Superseded is set when the revision is newer than ours and replaced our values: by whom and
	// with what ("<sha> (<author>: <subject>; backend=2.0.1)").
	Superseded string
}

// outcome is the judge's answer for one state.
type outcome struct {
	verdict verdict
	reason  string
	// attributable: the failure is our change's (our operation failed, or resources our operation
	// changed went Degraded). Only such failures are rolled back.
	attributable bool
	// aborted: our Rollouts were aborted (by our checks, or by Argo Rollouts itself).
	aborted bool
	// stale: waiting only because the health was not re-evaluated since our values synced.
	stale bool
}

// judge decides, from one observed state, whether the application runs our values and is healthy.
// It is pure: the wait loop feeds it every state it sees, with the time it saw it (the pipeline's
// clock: server timestamps are only compared with each other, never with it).
type judge struct {
	runID string
	// source is the index of our source in a multi-source application (-1: single source).
	source int
	match  func(rev string) Match
	grace  time.Duration
	// blame says whether a failure is our change's (nil: the older rule — our exact commit, and
	// objects that its operation changed).
	blame func(intent.Failure) (bool, string)
	// previous is the revision that ran before our change's operation ("" unknown).
	previous string
	// older: the revision is older than the branch head on purpose (see Options.Older).
	older bool

	degradedSince time.Time
	// staleSince is when we first saw our values synced but health not re-evaluated since the last
	// operation ended: the wait then asks for a refresh rather than wait for the controller's next pass.
	staleSince time.Time
	syncedRev  string
	syncedAt   time.Time
	syncedBy   Match
}

// syncRevision is the revision the application's sync status refers to, for our source.
func (j *judge) syncRevision(app *v1alpha1.Application) string {
	if j.source >= 0 {
		if revs := app.Status.Sync.Revisions; j.source < len(revs) {
			return revs[j.source]
		}
		return ""
	}
	return app.Status.Sync.Revision
}

// operationRevision is the revision an operation synced (or is syncing), for our source.
func (j *judge) operationRevision(op *v1alpha1.OperationState) string {
	pick := func(one string, many []string) string {
		if j.source < 0 {
			return one
		}
		if j.source < len(many) {
			return many[j.source]
		}
		return ""
	}
	if op.SyncResult != nil {
		if r := pick(op.SyncResult.Revision, op.SyncResult.Revisions); r != "" {
			return r
		}
	}
	if op.Operation.Sync != nil {
		return pick(op.Operation.Sync.Revision, op.Operation.Sync.Revisions)
	}
	return ""
}

// ours reports whether we requested the operation (it carries our run id).
func (j *judge) ours(op *v1alpha1.Operation) bool {
	if j.runID == "" || op == nil {
		return false
	}
	for _, i := range op.Info {
		if i.Name == "run-id" && i.Value == j.runID {
			return true
		}
	}
	return false
}

// inFlight reports whether an operation is requested or running.
func inFlight(app *v1alpha1.Application) bool {
	op := app.Status.OperationState
	return app.Operation != nil || (op != nil && (op.Phase == synccommon.OperationRunning || op.Phase == synccommon.OperationTerminating))
}

// observe returns the outcome of one state.
func (j *judge) observe(app *v1alpha1.Application, now time.Time) outcome {
	op := app.Status.OperationState
	if inFlight(app) {
		j.staleSince = time.Time{}
		return outcome{}
	}
	// The last operation failed: whose was it?
	if op != nil && (op.Phase == synccommon.OperationFailed || op.Phase == synccommon.OperationError) {
		rev := j.operationRevision(op)
		m := j.match(rev)
		why := fmt.Sprintf("sync %s: %s", strings.ToLower(string(op.Phase)), op.Message)
		switch {
		case m.Ours || j.ours(&op.Operation):
			if j.blame == nil {
				if m.Exact || j.ours(&op.Operation) {
					return outcome{verdict: failed, reason: why, attributable: true}
				}
				return outcome{verdict: failed, reason: fmt.Sprintf("%s (revision %s is a newer commit that contains ours: %s; not rolled back)", why, short(rev), m.By)}
			}
			return j.failure(why, rev, failedObjects(op))
		case m.Superseded != "":
			return outcome{verdict: superseded, reason: m.Superseded}
		}
		// An operation of another revision — someone else's, or an older commit that holds the same
		// values (yesterday's failed deploy of this version): ours may still come.
	}
	sync := app.Status.Sync
	rev := j.syncRevision(app)
	m := j.match(rev)
	// A newer commit replaced our values: synced, or (manual sync) waiting at it, ours will not run.
	if (sync.Status == v1alpha1.SyncStatusCodeSynced || sync.Status == v1alpha1.SyncStatusCodeOutOfSync) && m.Superseded != "" {
		return outcome{verdict: superseded, reason: m.Superseded}
	}
	synced := sync.Status == v1alpha1.SyncStatusCodeSynced && m.Ours
	if !synced && j.older && op != nil && op.Phase == synccommon.OperationSucceeded {
		// An older tree synced on purpose shows OutOfSync against the branch head: our operation's
		// success at our exact revision stands for Synced.
		if r := j.operationRevision(op); j.match(r).Exact {
			rev, m, synced = r, j.match(r), true
		}
	}
	if !synced {
		j.staleSince = time.Time{}
		return outcome{}
	}
	if j.syncedRev == "" {
		j.syncedRev, j.syncedAt, j.syncedBy = rev, now, m
	}
	// Health read before the controller re-evaluated it after the last operation is not trusted.
	if op != nil && op.FinishedAt != nil && (app.Status.ReconciledAt == nil || !app.Status.ReconciledAt.Time.After(op.FinishedAt.Time)) {
		if j.staleSince.IsZero() {
			j.staleSince = now
		}
		return outcome{stale: true}
	}
	j.staleSince = time.Time{}
	// Our change is the cause only when Argo CD runs exactly our commit and its operation changed
	// the failing resources.
	blame := func(why string) outcome {
		if j.blame != nil {
			return j.failure(why, rev, objectsIn(app, "Degraded", "Missing"))
		}
		if !m.Exact {
			return outcome{verdict: failed, reason: fmt.Sprintf("%s at %s, a newer commit that contains ours (%s); not rolled back", why, short(rev), m.By)}
		}
		return outcome{verdict: failed, reason: why, attributable: touched(op, j.operationRevision, rev, app)}
	}
	switch app.Status.Health.Status {
	case "Healthy":
		return outcome{verdict: done}
	case "Suspended":
		j.degradedSince = time.Time{}
		return outcome{verdict: suspended}
	case "Missing":
		return blame("health Missing after the sync succeeded")
	case "Degraded":
		if j.degradedSince.IsZero() {
			j.degradedSince = now
		}
		if d := now.Sub(j.degradedSince); d >= j.grace {
			return blame(fmt.Sprintf("health Degraded for %s (grace %s)", d.Round(time.Second), j.grace))
		}
		return outcome{}
	}
	j.degradedSince = time.Time{}
	return outcome{}
}

// failure is a failure at rev of the given objects (none: the operation as a whole), attributed by
// the blamer: ours, or "failed (not ours)" naming the object and the commit that changed it.
func (j *judge) failure(why, rev string, objs []render.Resource) outcome {
	ours, because := j.blame(intent.Failure{Revision: rev, Previous: j.previous, Resources: objs})
	if ours {
		return outcome{verdict: failed, reason: why + " (" + because + ")", attributable: true}
	}
	return outcome{verdict: failed, reason: NotOurs + ": " + why + "; " + because}
}

// timedOut is the outcome of a wait that ran out of time at app's state: when our values are synced
// and objects that our commit changed are still rolling out (or failing), our change did not finish
// rolling out in time — a failure of ours; otherwise a timeout that blames nobody.
func (j *judge) timedOut(app *v1alpha1.Application, why string) outcome {
	rev := j.syncRevision(app)
	if j.blame == nil || inFlight(app) || app.Status.Sync.Status != v1alpha1.SyncStatusCodeSynced || !j.match(rev).Ours {
		return outcome{verdict: failed, reason: why}
	}
	objs := objectsIn(app, "Progressing", "Degraded", "Missing")
	if len(objs) == 0 {
		return outcome{verdict: failed, reason: why}
	}
	ours, because := j.blame(intent.Failure{Revision: rev, Previous: j.previous, Resources: objs})
	if ours {
		return outcome{verdict: failed, reason: why + ": our rollout did not finish (" + because + ")", attributable: true}
	}
	return outcome{verdict: failed, reason: why + " (" + because + ")"}
}

// NotOurs starts the reason of a failure that our change did not cause.
const NotOurs = "failed (not ours)"

// failedObjects lists the objects a failed operation could not sync.
func failedObjects(op *v1alpha1.OperationState) []render.Resource {
	var out []render.Resource
	if op.SyncResult == nil {
		return nil
	}
	for _, r := range op.SyncResult.Resources {
		if r.Status == synccommon.ResultCodeSyncFailed || r.HookPhase == synccommon.OperationFailed || r.HookPhase == synccommon.OperationError {
			out = append(out, render.Resource{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name})
		}
	}
	return out
}

// objectsIn lists the application's objects whose health is one of statuses.
func objectsIn(app *v1alpha1.Application, statuses ...string) []render.Resource {
	var out []render.Resource
	for _, r := range app.Status.Resources {
		if r.Health != nil && slices.Contains(statuses, string(r.Health.Status)) {
			out = append(out, render.Resource{Group: r.Group, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name})
		}
	}
	return out
}

// touched reports whether a resource that is not Healthy was changed (created or configured) by
// the last operation, and that operation synced rev.
func touched(op *v1alpha1.OperationState, revOf func(*v1alpha1.OperationState) string, rev string, app *v1alpha1.Application) bool {
	if op == nil || op.SyncResult == nil || revOf(op) != rev {
		return false
	}
	changed := map[string]bool{}
	for _, r := range op.SyncResult.Resources {
		if r.Status == synccommon.ResultCodeSynced && !strings.HasSuffix(r.Message, "unchanged") {
			changed[r.Kind+"/"+r.Namespace+"/"+r.Name] = true
		}
	}
	for _, r := range app.Status.Resources {
		if r.Health != nil && (r.Health.Status == "Degraded" || r.Health.Status == "Missing") && changed[r.Kind+"/"+r.Namespace+"/"+r.Name] {
			return true
		}
	}
	return false
}

// describe is the one-line status of an application, for progress lines and errors.
func describe(app *v1alpha1.Application) string {
	phase := "none"
	if op := app.Status.OperationState; op != nil {
		phase = string(op.Phase)
	}
	rev := app.Status.Sync.Revision
	if rev == "" && len(app.Status.Sync.Revisions) > 0 {
		rev = strings.Join(shortAll(app.Status.Sync.Revisions), ",")
	} else {
		rev = short(rev)
	}
	return fmt.Sprintf("operation %s, sync %s at %s, health %s", phase, app.Status.Sync.Status, rev, app.Status.Health.Status)
}

func shortAll(revs []string) []string {
	out := make([]string, len(revs))
	for i, r := range revs {
		out[i] = short(r)
	}
	return out
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

// short is a revision as the wait's lines show it ("(none)" when there is none).
func short(sha string) string { return cmp.Or(git.Short(sha), "(none)") }
