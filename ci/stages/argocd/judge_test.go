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

func newJudge() *judge {
	return &judge{revision: ours, grace: 30 * time.Second, matches: func(rev string) (bool, bool) {
		switch rev {
		case ours:
			return true, false
		case newer: // contains ours
			return true, true
		}
		return false, false
	}}
}

func TestHealthReadBeforeReevaluationIsNotTrusted(t *testing.T) {
	j, now := newJudge(), time.Now()
	// Synced and Healthy at our revision, but the health was computed before the operation finished.
	if v, _ := j.observe(app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 10, 10), now); v != waiting {
		t.Fatalf("verdict %v on stale health, want waiting", v)
	}
	if v, _ := j.observe(app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 10, 9), now); v != waiting {
		t.Fatalf("verdict %v on older health, want waiting", v)
	}
	if j.staleSince.IsZero() {
		t.Error("stale health does not ask for a re-evaluation")
	}
	if v, _ := j.observe(app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 10, 11), now); v != done {
		t.Fatalf("verdict %v on re-evaluated health, want done", v)
	}
	if !j.staleSince.IsZero() {
		t.Error("still asking for a re-evaluation after it came")
	}
}

func TestOnlyOurRevisionCounts(t *testing.T) {
	now := time.Now()
	for name, a := range map[string]*v1alpha1.Application{
		"an older revision healthy":       app(synccommon.OperationSucceeded, older, v1alpha1.SyncStatusCodeSynced, older, health.HealthStatusHealthy, 10, 11),
		"synced elsewhere after our sync": app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, older, health.HealthStatusHealthy, 10, 11),
		"out of sync":                     app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeOutOfSync, ours, health.HealthStatusHealthy, 10, 11),
		"operation still running":         app(synccommon.OperationRunning, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 0, 11),
		"progressing":                     app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusProgressing, 10, 11),
		"someone else's failed operation": app(synccommon.OperationFailed, older, v1alpha1.SyncStatusCodeOutOfSync, older, health.HealthStatusDegraded, 10, 11),
	} {
		if v, reason := newJudge().observe(a, now); v != waiting {
			t.Errorf("%s: verdict %v (%s), want waiting", name, v, reason)
		}
	}
	j := newJudge()
	if v, _ := j.observe(app(synccommon.OperationSucceeded, newer, v1alpha1.SyncStatusCodeSynced, newer, health.HealthStatusHealthy, 10, 11), now); v != done || !j.contained || j.syncedRev != newer {
		t.Errorf("a newer commit containing ours: verdict %v contained %v", v, j.contained)
	}
}

func TestFailures(t *testing.T) {
	now := time.Now()
	if v, reason := newJudge().observe(app(synccommon.OperationFailed, ours, v1alpha1.SyncStatusCodeOutOfSync, ours, health.HealthStatusHealthy, 10, 11), now); v != failed || !strings.Contains(reason, "sync failed") {
		t.Errorf("failed sync: %v %s", v, reason)
	}
	if v, reason := newJudge().observe(app(synccommon.OperationError, ours, v1alpha1.SyncStatusCodeOutOfSync, ours, "", 10, 11), now); v != failed || !strings.Contains(reason, "sync error") {
		t.Errorf("sync error: %v %s", v, reason)
	}
	if v, reason := newJudge().observe(app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusMissing, 10, 11), now); v != failed || !strings.Contains(reason, "Missing") {
		t.Errorf("missing: %v %s", v, reason)
	}
	// Degraded is tolerated for the grace period, and recovering resets it.
	j := newJudge()
	degraded := app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusDegraded, 10, 11)
	if v, _ := j.observe(degraded, now); v != waiting {
		t.Error("degraded failed at once")
	}
	if v, _ := j.observe(app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusProgressing, 10, 12), now.Add(20*time.Second)); v != waiting {
		t.Error("progressing")
	}
	if v, _ := j.observe(degraded, now.Add(40*time.Second)); v != waiting {
		t.Error("degraded again: the grace restarts after a recovery")
	}
	if v, reason := j.observe(degraded, now.Add(71*time.Second)); v != failed || !strings.Contains(reason, "Degraded for 31s") {
		t.Errorf("degraded past grace: %v %s", v, reason)
	}
}

func TestOperationsBeforeOurRequestAreNotOurs(t *testing.T) {
	j := newJudge()
	j.requestedAt = time.Date(2026, 11, 28, 0, 0, 5, 0, time.UTC) // our request came after that operation started
	if op := j.ourOperation(app(synccommon.OperationSucceeded, ours, v1alpha1.SyncStatusCodeSynced, ours, health.HealthStatusHealthy, 10, 11)); op != nil {
		t.Error("an operation started before our request counted as ours")
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
