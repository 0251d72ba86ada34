package deploy

// Progressive delivery end to end: the harness runs the Argo Rollouts controller beside Argo CD,
// the "canary" and "blue-green" overlays roll out through kubernetes/components (as prod does), kwok
// makes pods Ready (never-ready ones never), and the checks are an HTTP server that reads the
// Rollout's live state, as a check of the release under test would see it break.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/testsupport/argocdharness"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// progressive seeds repo with the given Rollouts overlays (see argocdharness.SeedRepo), each
// deployed by the manually-synced application <repo>-<overlay>, Healthy on return.
func progressive(t testing.TB, repo string, overlays ...string) *world {
	t.Helper()
	w := setup(t, repo, overlays...)
	seed, _ := w.git.Head(repo, "main")
	for _, o := range overlays {
		app := repo + "-" + o
		if err := w.h.Application(app, w.git.RepoURL(repo), o, app, false); err != nil {
			t.Fatal(err)
		}
		ao := w.argo(t, app)
		ao.Revision, ao.Timeout, ao.DegradedGrace = seed, 4*time.Minute, time.Minute
		if _, err := argocd.Sync(context.Background(), ao); err != nil {
			t.Fatalf("initial deployment of %s: %v", app, err)
		}
	}
	return w
}

// rolloutStatus reads a Rollout's live status from the cluster.
type rolloutStatus struct {
	Status struct {
		Phase            string
		Abort            bool
		CurrentStepIndex *int
		StableRS         string
		CurrentPodHash   string
	}
	Spec struct{ Replicas int }
}

func (w *world) rollout(t *testing.T, ns, name string) rolloutStatus {
	t.Helper()
	var ro rolloutStatus
	if err := w.h.Get("/apis/argoproj.io/v1alpha1/namespaces/"+ns+"/rollouts/"+name, &ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

// checker is the release's check: it answers 200, or 503 once fail says so for the backend
// Rollout's live state; it counts the checks it answered.
func (w *world) checker(t testing.TB, ns string, fail func(rolloutStatus) bool) (*probe.Options, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		var ro rolloutStatus
		if err := w.h.Get("/apis/argoproj.io/v1alpha1/namespaces/"+ns+"/rollouts/backend", &ro); err == nil && fail != nil && fail(ro) {
			http.Error(rw, "canary broken", http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return &probe.Options{URLs: []string{srv.URL + "/api/posts"}, For: time.Second, Interval: 200 * time.Millisecond, Tolerance: 1}, &calls
}

func stepStages(r *report.Run) []report.Stage {
	var out []report.Stage
	for _, s := range r.Stages {
		if strings.HasPrefix(s.Name, "step ") {
			out = append(out, s)
		}
	}
	return out
}

// A canary whose checks pass at each pause is resumed step by step (20 %, then 50 %) and done only
// when both Rollouts run the new version fully promoted; the report and the mail list each step.
func TestCanaryPassesEveryStep(t *testing.T) {
	w := progressive(t, "cpass", "canary")
	ns := "cpass-canary"
	check, calls := w.checker(t, ns, nil)
	backend, frontend := w.push(t, "wanderlust-backend", "2.0.0"), w.push(t, "wanderlust-frontend", "2.0.0")
	argo := w.argo(t, ns)
	rep, err := Run(context.Background(), Options{
		Images: []string{backend, frontend}, Bump: bump.Options{Git: w.gitOpts("cpass"), Env: "canary"},
		Argo: &argo, Rollback: true, CanaryProbe: check, Notify: w.mail(),
	}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	steps := stepStages(rep)
	if len(steps) != 2 || calls.Load() == 0 {
		t.Fatalf("%d steps, %d checks:\n%s", len(steps), calls.Load(), rep.Text())
	}
	for i, want := range []string{"at 20 %", "at 50 %"} {
		s := steps[i]
		if s.Status != report.Succeeded || s.Output["check"] != "passed" || s.Output["action"] != "resumed" ||
			!strings.Contains(s.Output["rollouts"], "backend step") || !strings.Contains(s.Output["rollouts"], want) || !strings.Contains(s.Output["rollouts"], "frontend") {
			t.Errorf("step %d: %+v", i+1, s)
		}
	}
	for _, name := range []string{"backend", "frontend"} {
		ro := w.rollout(t, ns, name)
		if ro.Status.Phase != "Healthy" || ro.Status.StableRS != ro.Status.CurrentPodHash || ro.Status.StableRS == "" {
			t.Errorf("%s is not fully promoted: %+v", name, ro.Status)
		}
	}
	_, body := w.lastMail(t)
	if !strings.Contains(body, "step 1") || !strings.Contains(body, "step 2") || !strings.Contains(body, "at 50 %") {
		t.Errorf("the mail does not list the steps:\n%s", body)
	}
}

// A check that fails at the second pause (50 %) aborts the Rollouts in the cluster, restores our
// entries in git by field, waits until the previous version is Healthy again, and reports the
// failure with the step reached and the failing check — a change failure caught by the canary.
func TestCanaryCheckFailingAtStep2AbortsAndRestoresGit(t *testing.T) {
	w := progressive(t, "cfail", "canary")
	ns := "cfail-canary"
	check, _ := w.checker(t, ns, func(ro rolloutStatus) bool {
		return ro.Status.CurrentStepIndex != nil && *ro.Status.CurrentStepIndex >= 3
	})
	before, _ := w.git.Show("cfail", "main", "kubernetes/overlays/canary/kustomization.yaml")
	backend := w.push(t, "wanderlust-backend", "2.0.0")
	argo := w.argo(t, ns)
	rep, err := Run(context.Background(), Options{
		Images: []string{backend}, Bump: bump.Options{Git: w.gitOpts("cfail"), Env: "canary"},
		Argo: &argo, Rollback: true, CanaryProbe: check, Notify: w.mail(),
	}, nil)
	if err == nil {
		t.Fatalf("a canary whose check fails at 50 %% succeeded:\n%s", rep.Text())
	}
	var we *argocd.Error
	if !errors.As(err, &we) || !we.Aborted || !strings.Contains(err.Error(), "step 2 (canary step 3/4, 50 %)") || !strings.Contains(err.Error(), "503") {
		t.Errorf("error does not say where and why: %v", err)
	}
	if rep.Result != report.Failed || !rep.DORA.Failed || !rep.DORA.CanaryAborted || !rep.DORA.RolledBack || rep.DORA.TimeToRestore == 0 {
		t.Errorf("report:\n%s", rep.Text())
	}
	steps := stepStages(rep)
	if len(steps) != 2 || steps[0].Output["action"] != "resumed" || steps[1].Status != report.Failed || steps[1].Output["action"] != "aborted" {
		t.Errorf("steps %+v", steps)
	}
	after, _ := w.git.Show("cfail", "main", "kubernetes/overlays/canary/kustomization.yaml")
	if after != before {
		t.Errorf("git not restored by field:\n%s\n---- was ----\n%s", after, before)
	}
	if ro := w.rollout(t, ns, "backend"); ro.Status.Phase != "Healthy" || ro.Status.Abort {
		t.Errorf("the previous version is not Healthy again: %+v", ro.Status)
	}
	subject, body := w.lastMail(t)
	if !strings.HasSuffix(subject, "'FAILURE'") || !strings.Contains(body, "step 2") || !strings.Contains(body, "caught by the canary") {
		t.Errorf("mail %q:\n%s", subject, body)
	}
}

// A canary whose pods never become Ready stops at its first step; Argo Rollouts aborts it at its
// progress deadline, and the wait blames it on our change and restores git.
func TestCanaryThatNeverBecomesReadyIsAbortedAndRolledBack(t *testing.T) {
	w := progressive(t, "cnever", "canary")
	ns := "cnever-canary"
	before, _ := w.git.Show("cnever", "main", "kubernetes/overlays/canary/kustomization.yaml")
	broken := w.push(t, "wanderlust-backend", argocdharness.NeverReady)
	argo := w.argo(t, ns)
	rep, err := Run(context.Background(), Options{
		Images: []string{broken}, Bump: bump.Options{Git: w.gitOpts("cnever"), Env: "canary"}, Argo: &argo, Rollback: true,
	}, nil)
	var we *argocd.Error
	if err == nil || !errors.As(err, &we) || !we.Aborted || !rep.DORA.CanaryAborted || !rep.DORA.RolledBack {
		t.Fatalf("err %v\n%s", err, rep.Text())
	}
	if len(stepStages(rep)) != 0 {
		t.Errorf("a canary that never became Ready reached a pause: %+v", stepStages(rep))
	}
	if after, _ := w.git.Show("cnever", "main", "kubernetes/overlays/canary/kustomization.yaml"); after != before {
		t.Errorf("git not restored:\n%s", after)
	}
	if ro := w.rollout(t, ns, "backend"); ro.Status.Phase != "Healthy" {
		t.Errorf("the previous version is not Healthy again: %+v", ro.Status)
	}
}

// Blue-green: the new version starts behind the preview Service; checks that pass promote it, checks
// that fail abort it (the active Service never switched) and restore git.
func TestBlueGreenPromoteAndAbort(t *testing.T) {
	w := progressive(t, "bg", "blue-green")
	ns := "bg-blue-green"
	var broken atomic.Bool
	check, _ := w.checker(t, ns, func(rolloutStatus) bool { return broken.Load() })
	argo := w.argo(t, ns)
	rep, err := Run(context.Background(), Options{
		Images: []string{w.push(t, "wanderlust-backend", "2.0.0")}, Bump: bump.Options{Git: w.gitOpts("bg"), Env: "blue-green"},
		Argo: &argo, Rollback: true, CanaryProbe: check,
	}, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	if s := stepStages(rep); len(s) != 1 || !strings.Contains(s[0].Output["rollouts"], "preview (blue-green)") || s[0].Output["action"] != "resumed" {
		t.Errorf("steps %+v", s)
	}
	promoted := w.rollout(t, ns, "backend")
	if promoted.Status.Phase != "Healthy" || promoted.Status.StableRS != promoted.Status.CurrentPodHash {
		t.Errorf("not promoted: %+v", promoted.Status)
	}

	broken.Store(true)
	before, _ := w.git.Show("bg", "main", "kubernetes/overlays/blue-green/kustomization.yaml")
	rep, err = Run(context.Background(), Options{
		Images: []string{w.push(t, "wanderlust-backend", "3.0.0")}, Bump: bump.Options{Git: w.gitOpts("bg"), Env: "blue-green"},
		Argo: &argo, Rollback: true, CanaryProbe: check,
	}, nil)
	if err == nil || !rep.DORA.CanaryAborted || !strings.Contains(err.Error(), "blue-green preview") {
		t.Fatalf("a failing preview was promoted: %v\n%s", err, rep.Text())
	}
	if after, _ := w.git.Show("bg", "main", "kubernetes/overlays/blue-green/kustomization.yaml"); after != before {
		t.Errorf("git not restored:\n%s", after)
	}
	if ro := w.rollout(t, ns, "backend"); ro.Status.Phase != "Healthy" || ro.Status.StableRS != promoted.Status.StableRS {
		t.Errorf("the active version changed, or is not Healthy: %+v (was %s)", ro.Status, promoted.Status.StableRS)
	}
}

// --canary-steps manual stops at the first pause (result paused, nothing aborted); promote-canary
// then passes that pause and the next by the checks; a second change paused the same way is undone by
// abort-canary. Neither acts on an application that is not paused.
func TestManualStepsContinuedByPromoteCanary(t *testing.T) {
	w := progressive(t, "cman", "canary")
	ns := "cman-canary"
	check, _ := w.checker(t, ns, nil)
	argo := w.argo(t, ns)
	canary := CanaryOptions{Env: "canary", Git: w.gitOpts("cman"), Argo: argo, CanaryProbe: check}
	head0, _ := w.git.Head("cman", "main")
	if _, err := Continue(context.Background(), canary); !errors.Is(err, ErrNotPaused) {
		t.Fatalf("promote-canary with nothing paused: %v", err)
	}
	if h, _ := w.git.Head("cman", "main"); h != head0 {
		t.Fatal("a refused promote-canary pushed")
	}

	deploy := func(tag string) *report.Run {
		rep, err := Run(context.Background(), Options{
			Images: []string{w.push(t, "wanderlust-backend", tag)}, Bump: bump.Options{Git: w.gitOpts("cman"), Env: "canary"},
			Argo: &argo, Rollback: true, CanaryProbe: check, CanarySteps: CanaryManual,
		}, nil)
		if err != nil || rep.Result != report.Paused || !strings.Contains(rep.Reason, "step 1") {
			t.Fatalf("manual steps: %v\n%s", err, rep.Text())
		}
		if ro := w.rollout(t, ns, "backend"); ro.Status.Phase != "Paused" || ro.Status.CurrentStepIndex == nil || *ro.Status.CurrentStepIndex != 1 {
			t.Fatalf("not paused at the first pause: %+v", ro.Status)
		}
		return rep
	}
	paused, _ := w.git.Head("cman", "main")
	deploy("2.0.0")
	note := func(sha string) string {
		t.Helper()
		n, err := gitserver.Output(w.git.GitDir("cman"), "notes", "--ref=deployments", "show", sha)
		if err != nil {
			t.Fatalf("no deployment record on %s: %v", sha, err)
		}
		return n
	}
	change, _ := w.git.Head("cman", "main")
	if change == paused || !strings.Contains(note(change), `"result": "paused"`) {
		t.Fatalf("the paused deployment's record: %s", note(change))
	}
	rep, err := Continue(context.Background(), canary)
	if err != nil {
		t.Fatalf("promote-canary: %v\n%s", err, rep.Text())
	}
	// The pause it was left at is checked first, then the next one.
	if s := stepStages(rep); len(s) != 2 || !strings.Contains(s[0].Output["rollouts"], "at 20 %") || !strings.Contains(s[1].Output["rollouts"], "at 50 %") ||
		s[0].Output["action"] != "resumed" || s[1].Output["action"] != "resumed" {
		t.Errorf("promote-canary steps %+v", s)
	}
	if ro := w.rollout(t, ns, "backend"); ro.Status.Phase != "Healthy" || ro.Status.StableRS != ro.Status.CurrentPodHash {
		t.Errorf("not fully promoted: %+v", ro.Status)
	}

	// The record of the deployment now says how it ended, for metrics.
	if n := note(change); !strings.Contains(n, `"result": "succeeded"`) || !strings.Contains(n, `"healthy"`) {
		t.Errorf("the promoted deployment's record: %s", n)
	}
	promoted, _ := w.git.Show("cman", "main", "kubernetes/overlays/canary/kustomization.yaml")
	deploy("3.0.0")
	change, _ = w.git.Head("cman", "main")
	abort := canary
	abort.Abort = true
	rep, err = Continue(context.Background(), abort)
	if err != nil || rep.Result != report.Failed || !rep.DORA.CanaryAborted || !rep.DORA.RolledBack || !strings.Contains(rep.Reason, "aborted by hand") {
		t.Fatalf("abort-canary: %v\n%s", err, rep.Text())
	}
	if n := note(change); !strings.Contains(n, `"result": "failed"`) || !strings.Contains(n, `"canaryAborted": true`) || !strings.Contains(n, `"rolledBack": true`) {
		t.Errorf("the aborted deployment's record: %s", n)
	}
	if after, _ := w.git.Show("cman", "main", "kubernetes/overlays/canary/kustomization.yaml"); after != promoted {
		t.Errorf("git not restored to the promoted version:\n%s", after)
	}
	if ro := w.rollout(t, ns, "backend"); ro.Status.Phase != "Healthy" || ro.Status.Abort {
		t.Errorf("the promoted version is not Healthy again: %+v", ro.Status)
	}
}
