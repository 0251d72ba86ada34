package argocd

import (
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	"github.com/argoproj/gitops-engine/pkg/health"
	synccommon "github.com/argoproj/gitops-engine/pkg/sync/common"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const ours, newer, older = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222", "0000000000000000000000000000000000000000"

// app builds an application state: the operation's phase and revision, sync status and revision,
// health, and the seconds of finishedAt and reconciledAt.
func app(phase synccommon.OperationPhase, opRev string, sync v1alpha1.SyncStatusCode, syncRev string, h health.HealthStatusCode, finished, reconciled int) *v1alpha1.Application {
	base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	a := &v1alpha1.Application{}
	a.Status.OperationState = &v1alpha1.OperationState{Phase: phase, StartedAt: metav1.NewTime(base), SyncResult: &v1alpha1.SyncOperationResult{Revision: opRev}}
	if finished > 0 {
		t := metav1.NewTime(base.Add(time.Duration(finished) * time.Second))
		a.Status.OperationState.FinishedAt = &t
	}
	if reconciled > 0 {
		t := metav1.NewTime(base.Add(time.Duration(reconciled) * time.Second))
		a.Status.ReconciledAt = &t
	}
	a.Status.Sync = v1alpha1.SyncStatus{Status: sync, Revision: syncRev}
	a.Status.Health = v1alpha1.HealthStatus{Status: h}
	return a
}

// Revisions of the tests: ours; newer, a later commit that keeps our values; replaced, a later
// commit that replaced them (a revert, or another run's bump of the same image); older, before ours;
// sameValues, an older commit that already held our values.
const replaced, sameValues = "3333333333333333333333333333333333333333", "4444444444444444444444444444444444444444"

func newJudge() *judge {
	return &judge{runID: "run-1", source: -1, grace: 30 * time.Second, match: func(rev string) Match {
		switch rev {
		case ours:
			return Match{Ours: true, Exact: true}
		case newer:
			return Match{Ours: true, Newer: true, By: "222222222222 (Other <o@x>: deploy(dev): frontend 2.0.1)"}
		case replaced:
			return Match{Newer: true, Superseded: "333333333333 (Other <o@x>: Revert …; backend=1.0.0)"}
		case sameValues:
			return Match{Ours: true}
		}
		return Match{}
	}}
}

func see(j *judge, a *v1alpha1.Application, now time.Time) (verdict, string) {
	out := j.observe(a, now)
	return out.verdict, out.reason
}

func TestHealthReadBeforeReevaluationIsNotTrusted(t *testing.T) {
	j, now := newJudge(), time.Now()
	// Synced and Healthy at our revision, but the health was computed before the operation finished.
	if v, _ := see(j, app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 10, 10), now); v != waiting {
		t.Fatalf("verdict %v on stale health, want waiting", v)
	}
	if v, _ := see(j, app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 10, 9), now.Add(time.Second)); v != waiting {
		t.Fatalf("verdict %v on older health, want waiting", v)
	}
	// Staleness is timed by the pipeline's clock from when it was first seen, never against the
	// server's timestamps (a skewed clock changes nothing).
	if !j.staleSince.Equal(now) {
		t.Errorf("stale since %v, want the first observation %v", j.staleSince, now)
	}
	if v, _ := see(j, app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 10, 11), now); v != done {
		t.Fatalf("verdict %v on re-evaluated health, want done", v)
	}
	if !j.staleSince.IsZero() {
		t.Error("still asking for a re-evaluation after it came")
	}
}

func TestDoneMeansOurValuesRun(t *testing.T) {
	now := time.Now()
	for name, a := range map[string]*v1alpha1.Application{
		"an older revision healthy":       app(synccommon.OperationSucceeded, older, v1alpha1.SyncStatusCodeSynced, older, health.HealthStatusHealthy, 10, 11),
		"synced elsewhere after our sync": app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, older, health.HealthStatusHealthy, 10, 11),
		"out of sync":                     app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeOutOfSync, ours, health.HealthStatusHealthy, 10, 11),
		"operation still running":         app(synccommon.OperationRunning, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 0, 11),
		"progressing":                     app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusProgressing, 10, 11),
		"someone else's failed operation": app(synccommon.OperationFailed, older, v1alpha1.SyncStatusCodeOutOfSync, older, health.HealthStatusDegraded, 10, 11),
	} {
		if v, reason := see(newJudge(), a, now); v != waiting {
			t.Errorf("%s: verdict %v (%s), want waiting", name, v, reason)
		}
	}
	j := newJudge()
	if v, _ := see(j, app(synccommon.OperationSucceeded, newer, v1alpha1.SyncStatusCodeSynced, newer, health.HealthStatusHealthy, 10, 11), now); v != done || j.syncedBy.Exact || j.syncedRev != newer {
		t.Errorf("a newer commit keeping our values: verdict %v", v)
	}
	// Nothing was pushed (already deployed): an older commit holding our values, synced long ago.
	if v, _ := see(newJudge(), app(synccommon.OperationSucceeded, sameValues, v1alpha1.SyncStatusCodeSynced, sameValues, health.HealthStatusHealthy, 10, 500), now); v != done {
		t.Errorf("values already running: verdict %v, want done", v)
	}
}

func TestSupersededIsNeitherSuccessNorFailure(t *testing.T) {
	now := time.Now()
	for name, a := range map[string]*v1alpha1.Application{
		"synced":           app(synccommon.OperationSucceeded, replaced, v1alpha1.SyncStatusCodeSynced, replaced, health.HealthStatusHealthy, 10, 11),
		"synced, degraded": app(synccommon.OperationSucceeded, replaced, v1alpha1.SyncStatusCodeSynced, replaced, health.HealthStatusDegraded, 10, 11),
		"its sync failed":  app(synccommon.OperationFailed, replaced, v1alpha1.SyncStatusCodeOutOfSync, replaced, health.HealthStatusHealthy, 10, 11),
	} {
		out := newJudge().observe(a, now)
		if out.verdict != superseded || !strings.Contains(out.reason, "333333333333") || out.attributable {
			t.Errorf("%s: %+v, want superseded by 333333333333", name, out)
		}
	}
	// While the replacing revision is still being synced, we wait.
	if v, _ := see(newJudge(), app(synccommon.OperationRunning, replaced, v1alpha1.SyncStatusCodeOutOfSync, replaced, health.HealthStatusHealthy, 0, 11), now); v != waiting {
		t.Errorf("replacing revision in flight: %v", v)
	}
}

func TestFailuresAndWhoseTheyAre(t *testing.T) {
	now := time.Now()
	check := func(name string, a *v1alpha1.Application, reason string, attributable bool) {
		t.Helper()
		out := newJudge().observe(a, now)
		if out.verdict != failed || !strings.Contains(out.reason, reason) || out.attributable != attributable {
			t.Errorf("%s: %+v; want failed (%q), attributable=%v", name, out, reason, attributable)
		}
	}
	check("our sync failed", app(synccommon.OperationFailed, ours, v1alpha1.SyncStatusCodeOutOfSync, ours, health.HealthStatusHealthy, 10, 11), "sync failed", true)
	check("our sync errored", app(synccommon.OperationError, ours, v1alpha1.SyncStatusCodeOutOfSync, ours, "", 10, 11), "sync error", true)
	requested := app(synccommon.OperationFailed, "", v1alpha1.SyncStatusCodeOutOfSync, older, "", 10, 11)
	requested.Status.OperationState.Operation.Info = []*v1alpha1.Info{{Name: "run-id", Value: "run-1"}}
	check("the operation we requested failed before resolving a revision", requested, "sync failed", true)
	check("a newer commit containing ours failed", app(synccommon.OperationFailed, newer, v1alpha1.SyncStatusCodeOutOfSync, newer, "", 10, 11), "222222222222 (Other", false)
	check("missing, nothing changed by the operation", app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusMissing, 10, 11), "Missing", false)

	// Degraded is tolerated for the grace period, and recovering resets it.
	degraded := func(changed bool) *v1alpha1.Application {
		a := app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusDegraded, 10, 11)
		msg := "deployment.apps/backend unchanged"
		if changed {
			msg = "deployment.apps/backend configured"
		}
		a.Status.OperationState.SyncResult.Resources = v1alpha1.ResourceResults{
			{Group: "apps", Kind: "Deployment", Namespace: "ns", Name: "backend", Status: synccommon.ResultCodeSynced, Message: msg},
			{Kind: "Service", Namespace: "ns", Name: "backend", Status: synccommon.ResultCodeSynced, Message: "service/backend configured"},
		}
		a.Status.Resources = []v1alpha1.ResourceStatus{{Group: "apps", Kind: "Deployment", Namespace: "ns", Name: "backend", Health: &v1alpha1.HealthStatus{Status: health.HealthStatusDegraded}}}
		return a
	}
	j := newJudge()
	if v, _ := see(j, degraded(true), now); v != waiting {
		t.Error("degraded failed at once")
	}
	if v, _ := see(j, app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusProgressing, 10, 12), now.Add(20*time.Second)); v != waiting {
		t.Error("progressing")
	}
	if v, _ := see(j, degraded(true), now.Add(40*time.Second)); v != waiting {
		t.Error("degraded again: the grace restarts after a recovery")
	}
	if out := j.observe(degraded(true), now.Add(71*time.Second)); out.verdict != failed || !strings.Contains(out.reason, "Degraded for 31s") || !out.attributable {
		t.Errorf("degraded past grace, on a resource our operation changed: %+v", out)
	}
	// A Degraded resource that our operation left unchanged (drift, someone else) is not ours.
	j = newJudge()
	j.observe(degraded(false), now)
	if out := j.observe(degraded(false), now.Add(31*time.Second)); out.verdict != failed || out.attributable {
		t.Errorf("degraded, untouched by our operation: %+v", out)
	}
	// On a newer commit that contains ours: failed, not attributable, naming who.
	d := degraded(true)
	d.Status.OperationState.SyncResult.Revision, d.Status.Sync.Revision = newer, newer
	j = newJudge()
	j.observe(d, now)
	if out := j.observe(d, now.Add(31*time.Second)); out.verdict != failed || out.attributable || !strings.Contains(out.reason, "Other <o@x>") {
		t.Errorf("degraded at a newer commit: %+v", out)
	}
}

func TestMultiSourceRevisions(t *testing.T) {
	j := newJudge()
	j.source = 1
	a := app(synccommon.OperationSucceeded, "", v1alpha1.SyncStatusCodeSynced, "", health.HealthStatusHealthy, 10, 11)
	a.Status.Sync.Revisions = []string{older, ours}
	a.Status.OperationState.SyncResult.Revisions = []string{older, ours}
	if v, reason := see(j, a, time.Now()); v != done {
		t.Errorf("multi-source app synced at ours: %v %s", v, reason)
	}
	j = newJudge()
	j.source = 0
	if v, _ := see(j, a, time.Now()); v != waiting {
		t.Errorf("our source (0) is at an older revision: %v", v)
	}
}

func TestUnhealthyListsResources(t *testing.T) {
	a := &v1alpha1.Application{}
	a.Status.Resources = []v1alpha1.ResourceStatus{
		{Kind: "Deployment", Namespace: "wanderlust-dev", Name: "backend", Health: &v1alpha1.HealthStatus{Status: health.HealthStatusDegraded, Message: `Deployment "backend" exceeded its progress deadline`}},
		{Kind: "Service", Name: "backend-service", Health: &v1alpha1.HealthStatus{Status: health.HealthStatusHealthy}},
		{Kind: "ConfigMap", Name: "x"},
	}
	got := unhealthy(a)
	if len(got) != 1 || got[0] != `Deployment/wanderlust-dev/backend Degraded: Deployment "backend" exceeded its progress deadline` {
		t.Errorf("unhealthy = %q", got)
	}
	e := &Error{App: "wanderlust-dev", Revision: ours, Reason: "health Degraded", Phase: "Succeeded", Health: "Degraded", Sync: "Synced", Unhealthy: got}
	for _, want := range []string{"wanderlust-dev", "111111111111", "Succeeded", "Degraded", "exceeded its progress deadline"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("error %q lacks %q", e, want)
		}
	}
}

// A paused Rollout makes the application Suspended (Argo CD v2.14 maps the Rollout's Paused phase
// to it): neither done nor a failure — a pause to decide, once our values are synced and the health
// was re-evaluated since; before that, or at someone else's revision, the wait goes on. A Suspended
// application never ends a wait as done (argo-cd#25054: the operation alone says nothing).
func TestASuspendedApplicationIsAPauseNotDoneNorFailed(t *testing.T) {
	j, now := newJudge(), time.Now()
	if v, _ := see(j, app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusSuspended, 10, 11), now); v != suspended {
		t.Fatalf("verdict %v at our values, Suspended, want suspended", v)
	}
	if v, _ := see(newJudge(), app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusSuspended, 10, 10), now); v != waiting {
		t.Errorf("verdict %v on stale Suspended health, want waiting", v)
	}
	if v, _ := see(newJudge(), app(synccommon.OperationSucceeded, older, v1alpha1.SyncStatusCodeSynced, older, health.HealthStatusSuspended, 10, 11), now); v != waiting {
		t.Errorf("verdict %v Suspended at an older revision, want waiting", v)
	}
	if v, _ := see(newJudge(), app(synccommon.OperationRunning, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusSuspended, 0, 11), now); v != waiting {
		t.Errorf("verdict %v Suspended while our operation runs, want waiting", v)
	}
}

// The steps the report lists say where each Rollout stood.
func TestStepNamesTheRolloutsWeightAndChecks(t *testing.T) {
	s := Step{N: 2, Rollouts: []RolloutState{{Name: "backend", Strategy: "canary", Step: 3, Steps: 4, Weight: 50}, {Name: "frontend", Strategy: "blueGreen"}},
		Check: "passed", Action: "resumed", Took: 1500 * time.Millisecond}
	if got, want := s.String(), "step 2: backend step 3/4 at 50 %, frontend preview (blue-green): checks passed, resumed after 1.5s"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := stepName(2, s.Rollouts); !strings.Contains(got, "canary step 3/4, 50 %") {
		t.Errorf("stepName %q", got)
	}
}
