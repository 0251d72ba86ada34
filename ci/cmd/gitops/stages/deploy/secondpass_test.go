package deploy

// The verdict's second pass, end to end on the loopback Argo CD: manual-sync applications, one sync
// carrying several commits, old operations, sync windows per kind of sync, rollouts that never
// finish, layouts that cannot be judged, and a push whose acknowledgement was lost.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	applicationpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/application"
	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"

	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/metrics"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/testsupport/argocdharness"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// manual creates the manual-sync application <repo>-<overlay> (the overlay seeded by setup) and
// deploys the branch head with it, as setup does for the auto-sync ones.
func (w *world) manual(t *testing.T, repo, overlay string) string {
	t.Helper()
	name := repo + "-" + overlay
	if err := w.h.Application(name, w.git.RepoURL(repo), overlay, name, false); err != nil {
		t.Fatal(err)
	}
	w.deployed(t, repo, name)
	return name
}

// deployed waits until app runs the branch head, Healthy (syncing it when it is manual-sync); the
// first rollout of a namespace may overrun the test overlays' 5 s progress deadline on a loaded
// machine, so the wait is long and lenient.
func (w *world) deployed(t *testing.T, repo, app string) {
	t.Helper()
	o := w.argo(t, app)
	o.Revision, _ = w.git.Head(repo, "main")
	o.Timeout, o.DegradedGrace = 4*time.Minute, time.Minute
	if _, err := argocd.Sync(context.Background(), o); err != nil {
		t.Fatalf("initial deployment of %s: %v", app, err)
	}
}

// application reads an application as Argo CD's API serves it.
func (w *world) application(t *testing.T, name string) *v1alpha1.Application {
	t.Helper()
	app, err := w.applications(t).Get(context.Background(), &applicationpkg.ApplicationQuery{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

// operatedAt lists the revisions of the application's deployments (its history) and of its last
// operation.
func operatedAt(app *v1alpha1.Application) []string {
	var revs []string
	for _, h := range app.Status.History {
		revs = append(revs, h.Revision)
	}
	if op := app.Status.OperationState; op != nil {
		if op.SyncResult != nil {
			revs = append(revs, op.SyncResult.Revision)
		}
		if op.Operation.Sync != nil {
			revs = append(revs, op.Operation.Sync.Revision)
		}
	}
	return revs
}

// commitFiles commits files (path → content; "" deletes) to the repository's main as another
// writer would, and returns the commit.
func (w *world) commitFiles(t *testing.T, repo, message string, files map[string]string) string {
	t.Helper()
	work := t.TempDir()
	if err := gitserver.Git("", "clone", "-q", w.git.GitDir(repo), work); err != nil {
		t.Fatal(err)
	}
	for p, content := range files {
		full := filepath.Join(work, p)
		if content == "" {
			_ = os.Remove(full)
			continue
		}
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-qm", message}, {"push", "-q", "origin", "main"}} {
		if err := gitserver.Git(work, args...); err != nil {
			t.Fatal(err)
		}
	}
	head, _ := w.git.Head(repo, "main")
	return head
}

// 1. On a manual-sync application, another writer pushes D after our commit C, keeping our values:
// Argo CD is asked for D (the branch head), never for C, and the deployment is done at D.
func TestManualSyncOfTheHeadWhenItKeepsOurValues(t *testing.T) {
	w := setup(t, "mhead", "manual")
	app := w.manual(t, "mhead", "manual")
	frontend := w.push(t, "wanderlust-frontend", "4.0.0")
	o := w.deployOf(t, "mhead", "manual", w.push(t, "wanderlust-backend", "2.0.0"))
	var d string
	onPush(&o, func() { d = w.other(t, "mhead", "manual", frontend) })
	rep, err := Run(context.Background(), o, nil)
	if err != nil || rep.Result != report.Succeeded {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	c := stage(rep, "bump").Output["sha"]
	a := w.application(t, app)
	if stage(rep, "sync").Output["synced"] != d || a.Status.Sync.Revision != d || a.Status.Sync.Status != v1alpha1.SyncStatusCodeSynced {
		t.Errorf("the cluster is not at the head %s: app at %s (%s)\n%s", d[:12], a.Status.Sync.Revision, a.Status.Sync.Status, rep.Text())
	}
	if slices.Contains(operatedAt(a), c) {
		t.Errorf("an operation synced our older commit %s after %s existed: %v", c[:12], d[:12], operatedAt(a))
	}
}

// 1. …and when D reverts our values: superseded at once, no sync requested at all.
func TestManualSyncNothingWhenTheHeadRevertedOurValues(t *testing.T) {
	w := setup(t, "mrev", "manual")
	app := w.manual(t, "mrev", "manual")
	// The application lags behind the branch, as manual-sync applications do: someone's commit is
	// not synced yet.
	w.other(t, "mrev", "manual", w.push(t, "wanderlust-frontend", "3.0.0"))
	before := operatedAt(w.application(t, app))
	o := w.deployOf(t, "mrev", "manual", w.push(t, "wanderlust-backend", "2.0.0"))
	o.Argo.Timeout = time.Minute
	var d string
	onPush(&o, func() { d = w.revertHead(t, "mrev") })
	start := time.Now()
	rep, err := Run(context.Background(), o, nil)
	if err != nil || rep.Result != report.Superseded || !strings.Contains(rep.Reason, d[:12]) {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("superseded after %s: it waited instead of seeing it at once", took)
	}
	c := stage(rep, "bump").Output["sha"]
	a := w.application(t, app)
	if after := operatedAt(a); slices.Contains(after, c) || len(after) != len(before) {
		t.Errorf("a sync was requested: operations before %v, after %v (our commit %s)", before, after, c[:12])
	}
}

// 1. The module's sync of a revision older than what the application runs is refused, unless
// --allow-older.
func TestSyncOfAnOlderRevisionNeedsAllowOlder(t *testing.T) {
	w := setup(t, "older", "manual")
	app := w.manual(t, "older", "manual")
	g := w.gitOpts("older")
	x := w.other(t, "older", "manual", w.push(t, "wanderlust-backend", "2.0.0"))
	argo := w.argo(t, app)
	argo.Revision = x
	if _, err := Sync(context.Background(), SyncOptions{Argo: argo, Git: g}); err != nil {
		t.Fatal(err)
	}
	y := w.other(t, "older", "manual", w.push(t, "wanderlust-backend", "2.0.1"))
	argo.Revision = y
	if _, err := Sync(context.Background(), SyncOptions{Argo: argo, Git: g}); err != nil {
		t.Fatal(err)
	}
	argo.Revision = x
	_, err := Sync(context.Background(), SyncOptions{Argo: argo, Git: g})
	if err == nil || !strings.Contains(err.Error(), "refusing to sync an older tree") || !strings.Contains(err.Error(), "--allow-older") {
		t.Fatalf("err = %v", err)
	}
	if a := w.application(t, app); a.Status.History.LastRevisionHistory().Revision != y {
		t.Errorf("the refused sync changed what runs: %s", a.Status.History.LastRevisionHistory().Revision)
	}
	out, err := Sync(context.Background(), SyncOptions{Argo: argo, Git: g, AllowOlder: true})
	if err != nil || out.Deployed.SyncedRevision != x {
		t.Fatalf("--allow-older: %+v %v", out, err)
	}
}

// 2. Someone's unsynced backend commit B lies under our frontend commit F; one manual sync carries
// both, and the backend fails: not ours — F stays, B is named, no change failure.
func TestOneSyncOfTwoCommitsBlamesTheCommitThatChangedTheFailingObject(t *testing.T) {
	w := setup(t, "blame", "manual")
	w.manual(t, "blame", "manual")
	b := w.other(t, "blame", "manual", w.push(t, "wanderlust-backend", argocdharness.NeverReady))
	o := w.deployOf(t, "blame", "manual", w.push(t, "wanderlust-frontend", "4.0.0"))
	rep, err := Run(context.Background(), o, nil)
	if err == nil {
		t.Fatalf("a sync with a never-ready backend succeeded\n%s", rep.Text())
	}
	f := stage(rep, "bump").Output["sha"]
	if rep.Result != report.NotOurs || rep.DORA.Failed || rep.DORA.RolledBack || !strings.Contains(err.Error(), "Deployment/") ||
		!strings.Contains(err.Error(), "backend") || !strings.Contains(err.Error(), b[:12]) {
		t.Errorf("err = %v\n%s", err, rep.Text())
	}
	if head, _ := w.git.Head("blame", "main"); head != f {
		t.Errorf("our frontend commit %s was rolled back (head %s)", f[:12], head[:12])
	}
	if subject, _ := w.lastMail(t); !strings.Contains(subject, "not because of this change") {
		t.Errorf("mail subject %q", subject)
	}
}

// 3. Yesterday's failed operation at a commit that holds the same values as ours (reverted since)
// does not end today's deploy: it syncs and succeeds.
func TestAnOlderFailedOperationWithOurValuesIsNotOurs(t *testing.T) {
	w := setup(t, "hist", "manual")
	app := w.manual(t, "hist", "manual")
	img := w.push(t, "wanderlust-backend", "2.0.0")
	// Yesterday: the same image, with an object the API server refuses (the sync fails).
	k0, _ := w.git.Show("hist", "main", "kubernetes/overlays/manual/kustomization.yaml")
	w.other(t, "hist", "manual", img)
	k1, _ := w.git.Show("hist", "main", "kubernetes/overlays/manual/kustomization.yaml")
	x := w.commitFiles(t, "hist", "yesterday: 2.0.0 with a broken object", map[string]string{
		"kubernetes/overlays/manual/bad.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Valid_Name\n",
		"kubernetes/overlays/manual/kustomization.yaml": strings.Replace(k1, "resources:\n", "resources:\n  - bad.yaml\n", 1),
	})
	argo := w.argo(t, app)
	argo.Revision, argo.Timeout = x, 30*time.Second
	if _, err := Sync(context.Background(), SyncOptions{Argo: argo, Git: w.gitOpts("hist")}); err == nil {
		t.Fatal("the broken sync succeeded")
	}
	if op := w.application(t, app).Status.OperationState; op == nil || (op.Phase != "Failed" && op.Phase != "Error") {
		t.Fatalf("no failed operation at %s: %+v", x[:12], op)
	}
	// Reverted since: back to what ran before (1.0.0).
	w.commitFiles(t, "hist", "revert yesterday", map[string]string{
		"kubernetes/overlays/manual/bad.yaml":           "",
		"kubernetes/overlays/manual/kustomization.yaml": k0,
	})
	rep, err := Run(context.Background(), w.deployOf(t, "hist", "manual", img), nil)
	if err != nil || rep.Result != report.Succeeded {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	if strings.Contains(rep.Text(), "newer commit") {
		t.Errorf("an older commit was called newer:\n%s", rep.Text())
	}
}

// 3. A rollback whose wait ends superseded (a newer commit replaced the restored values) is
// reported as such: no "Healthy after", no time to restore.
func TestARollbackSupersededIsNoRestore(t *testing.T) {
	w := setup(t, "rbsup")
	o := w.deployOf(t, "rbsup", "dev", w.push(t, "wanderlust-backend", argocdharness.NeverReady))
	fixed := w.push(t, "wanderlust-backend", "2.0.1")
	var mu sync.Mutex
	pushes := 0
	o.Bump.Git.Log = func(s string) {
		t.Log(s)
		if !strings.HasPrefix(s, "pushed ") {
			return
		}
		mu.Lock()
		pushes++
		n := pushes
		mu.Unlock()
		if n == 2 { // the rollback landed: someone deploys a fixed backend on top of it
			w.other(t, "rbsup", "dev", fixed)
		}
	}
	rep, err := Run(context.Background(), o, nil)
	if err == nil || !strings.Contains(err.Error(), "superseded") || strings.Contains(err.Error(), "Healthy after") {
		t.Fatalf("err = %v\n%s", err, rep.Text())
	}
	if !rep.DORA.Failed || !rep.DORA.RolledBack || rep.DORA.TimeToRestore != 0 || stage(rep, "rollback").Status != report.Superseded {
		t.Errorf("report:\n%s", rep.Text())
	}
}

// 4. A deny window that lets manual syncs through blocks the controller: an auto-sync application
// is refused before anything is pushed; a manual-sync one deploys.
func TestSyncWindowsAreCheckedForTheSyncWeRelyOn(t *testing.T) {
	w := setup(t, "win", "auto", "manual")
	if err := w.h.Project("manualonly", `"syncWindows":[{"kind":"deny","schedule":"* * * * *","duration":"1h","applications":["*"],"manualSync":true}]`); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"auto", "manual"} {
		if err := w.h.App(argocdharness.AppSpec{Name: "win-" + o, RepoURL: w.git.RepoURL("win"), Overlay: o, Namespace: "win-" + o, Project: "manualonly", Auto: o == "auto"}); err != nil {
			t.Fatal(err)
		}
	}
	w.deployed(t, "win", "win-manual") // a manual sync, which the window lets through
	img := w.push(t, "wanderlust-backend", "2.0.0")
	before, _ := w.git.Head("win", "main")
	o := w.deployOf(t, "win", "auto", img)
	o.Argo.Timeout = 20 * time.Second
	rep, err := Run(context.Background(), o, nil)
	if err == nil || !strings.Contains(err.Error(), "preflight") || !strings.Contains(err.Error(), "blocks auto-sync of win-auto") {
		t.Fatalf("err = %v\n%s", err, rep.Text())
	}
	if after, _ := w.git.Head("win", "main"); after != before {
		t.Error("pushed although the controller may not sync")
	}
	rep, err = Run(context.Background(), w.deployOf(t, "win", "manual", img), nil)
	if err != nil || rep.Result != report.Succeeded {
		t.Fatalf("manual-sync application in the same window: %v\n%s", err, rep.Text())
	}
}

// 5. A rollout that does not finish before --timeout (its progress deadline is longer) is a failure
// of ours: rolled back and counted.
func TestARolloutThatNeverFinishesIsOurFailure(t *testing.T) {
	w := setup(t, "slow", "slow")
	w.commitFiles(t, "slow", "slow overlay: Kubernetes' own progress deadline", map[string]string{
		"kubernetes/overlays/slow/deadline.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\nspec:\n  progressDeadlineSeconds: 600\n",
	})
	if err := w.h.Application("slow-slow", w.git.RepoURL("slow"), "slow", "slow-slow", true); err != nil {
		t.Fatal(err)
	}
	w.deployed(t, "slow", "slow-slow")
	o := w.deployOf(t, "slow", "slow", w.push(t, "wanderlust-backend", argocdharness.NeverReady))
	o.Argo.Timeout = 25 * time.Second
	rep, err := Run(context.Background(), o, nil)
	if err == nil || !errors.Is(err, argocd.ErrTimeout) || !strings.Contains(err.Error(), "our rollout did not finish") {
		t.Fatalf("err = %v\n%s", err, rep.Text())
	}
	if !rep.DORA.Failed || !rep.DORA.RolledBack || stage(rep, "rollback").Status != report.Succeeded {
		t.Errorf("report:\n%s", rep.Text())
	}
	k, _ := w.git.Show("slow", "main", "kubernetes/overlays/slow/kustomization.yaml")
	if strings.Contains(k, argocdharness.NeverReady) {
		t.Errorf("not rolled back:\n%s", k)
	}
}

// 5. Without --timeout, the wait lasts as long as Kubernetes would wait for the rollout: the
// workload's progress deadline (5 s in the test overlays) + the degraded grace (3 s) + a minute.
func TestTheDefaultTimeoutFollowsTheProgressDeadline(t *testing.T) {
	w := setup(t, "deflt")
	o := w.deployOf(t, "deflt", "dev", w.push(t, "wanderlust-backend", "2.0.0"))
	o.Argo.Timeout = 0
	rep, err := Run(context.Background(), o, nil)
	if err != nil || stage(rep, "sync").Output["timeout"] != "1m8s" {
		t.Fatalf("timeout %q, err %v\n%s", stage(rep, "sync").Output["timeout"], err, rep.Text())
	}
}

// 6. An overlay of plain manifests (no kustomization) can be bumped but not judged or undone:
// deploy refuses it in preflight, pushing nothing.
func TestPlainManifestsAreRefusedBeforeThePush(t *testing.T) {
	w := setup(t, "plain")
	w.commitFiles(t, "plain", "plain manifests", map[string]string{
		"kubernetes/overlays/plain/backend.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\nspec:\n  selector:\n    matchLabels: {app: backend}\n" +
			"  template:\n    metadata:\n      labels: {app: backend}\n    spec:\n      containers:\n      - name: backend\n        image: ghcr.io/wanderlust-app/wanderlust-backend:1.0.0\n",
	})
	if err := w.h.Application("plain-plain", w.git.RepoURL("plain"), "plain", "plain-plain", true); err != nil {
		t.Fatal(err)
	}
	before, _ := w.git.Head("plain", "main")
	rep, err := Run(context.Background(), w.deployOf(t, "plain", "plain", w.push(t, "wanderlust-backend", "2.0.0")), nil)
	if err == nil || !strings.Contains(err.Error(), "preflight") || !strings.Contains(err.Error(), "kustomization") {
		t.Fatalf("err = %v\n%s", err, rep.Text())
	}
	if after, _ := w.git.Head("plain", "main"); after != before {
		t.Error("pushed a change deploy cannot judge")
	}
}

// 7. The remote applies our push but the reply is lost: the retry recognises our own commit at the
// head and the deploy goes on with it (synced, Healthy, recorded), not "already deployed".
func TestAPushWhoseAcknowledgementWasLost(t *testing.T) {
	w := setup(t, "ack")
	var once sync.Once
	dropped := false
	w.git.DropReply(func(r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			return false
		}
		drop := false
		once.Do(func() { drop, dropped = true, true })
		return drop
	})
	t.Cleanup(func() { w.git.DropReply(nil) })
	rep, err := Run(context.Background(), w.deployOf(t, "ack", "dev", w.push(t, "wanderlust-backend", "2.0.0")), nil)
	if err != nil || rep.Result != report.Succeeded || !dropped {
		t.Fatalf("%v (reply dropped: %v)\n%s", err, dropped, rep.Text())
	}
	head, _ := w.git.Head("ack", "main")
	if stage(rep, "bump").Output["sha"] != head || stage(rep, "sync").Output["synced"] != head {
		t.Errorf("head %s\n%s", head[:12], rep.Text())
	}
	if note, err := gitserver.Output(w.git.GitDir("ack"), "notes", "--ref=deployments", "show", head); err != nil || !strings.Contains(note, `"result": "succeeded"`) {
		t.Errorf("note: %q %v", note, err)
	}
}

// 8. Cancelled (Ctrl-C, a CI cancel) during the soak: a cancelled run, not a change failure, and
// nothing is rolled back.
func TestACancelDuringTheSoakIsNoChangeFailure(t *testing.T) {
	w := setup(t, "cancel")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		once.Do(func() { time.AfterFunc(300*time.Millisecond, cancel) })
		rw.Write([]byte("ok"))
	}))
	defer app.Close()
	o := w.deployOf(t, "cancel", "dev", w.push(t, "wanderlust-backend", "2.0.0"))
	o.Probe = &probe.Options{URLs: []string{app.URL + "/health"}, For: 30 * time.Second, Interval: 100 * time.Millisecond}
	rep, err := Run(ctx, o, nil)
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("err = %v\n%s", err, rep.Text())
	}
	bumped := stage(rep, "bump").Output["sha"]
	if head, _ := w.git.Head("cancel", "main"); head != bumped || rep.DORA.Failed || rep.DORA.RolledBack {
		t.Errorf("head %s, bump %s\n%s", head, bumped, rep.Text())
	}
}

// 9. Promote writes exactly what the source runs — its repository too, not the target's own
// newName — and carries the application commit's time on, so staging has a lead time.
func TestPromoteWritesExactlyWhatTheSourceRunsAndItsCommitTime(t *testing.T) {
	w := setup(t, "pnn")
	k, _ := w.git.Show("pnn", "main", "kubernetes/overlays/staging/kustomization.yaml")
	own := strings.Replace(k, "  - name: ghcr.io/wanderlust-app/wanderlust-frontend\n", "  - name: ghcr.io/wanderlust-app/wanderlust-frontend\n    newName: registry.staging.example/acme/wanderlust-frontend\n", 1)
	if own == k {
		t.Fatalf("no frontend entry in:\n%s", k)
	}
	w.commitFiles(t, "pnn", "staging pulls the frontend from its own registry", map[string]string{"kubernetes/overlays/staging/kustomization.yaml": own})
	w.deployed(t, "pnn", "pnn-staging")
	promote := func() *report.Run {
		t.Helper()
		rep, err := Promote(context.Background(), PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("pnn"), Argo: w.argo(t, ""), FromApp: "pnn-dev", ToApp: "pnn-staging"})
		if err != nil {
			t.Fatalf("%v\n%s", err, rep.Text())
		}
		dev, _ := w.git.Show("pnn", "main", "kubernetes/overlays/dev/kustomization.yaml")
		staging, _ := w.git.Show("pnn", "main", "kubernetes/overlays/staging/kustomization.yaml")
		if a, b := dev[strings.Index(dev, "images:"):], staging[strings.Index(staging, "images:"):]; a != b {
			t.Errorf("staging does not run what dev runs:\n%s\n---\n%s", a, b)
		}
		return rep
	}
	promote()

	commitTime := time.Now().Add(-time.Hour).Truncate(time.Second)
	o := w.deployOf(t, "pnn", "dev", w.push(t, "wanderlust-backend", "2.0.0"), w.push(t, "wanderlust-frontend", "2.0.0"))
	o.Bump.SourceCommit, o.SourceCommitTime = "0123456789abcdef0123456789abcdef01234567", commitTime
	if rep, err := Run(context.Background(), o, nil); err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	rep := promote()
	if rep.DORA.SourceCommitTime == nil || !rep.DORA.SourceCommitTime.Equal(commitTime) || rep.DORA.LeadTime < time.Hour {
		t.Errorf("DORA %+v", rep.DORA)
	}
	msg, _ := gitserver.Output(w.git.GitDir("pnn"), "log", "-1", "--format=%B", stage(rep, "bump").Output["sha"])
	if !strings.Contains(msg, "Source-Commit-Time: "+commitTime.UTC().Format(time.RFC3339)) || !strings.Contains(msg, "Source-Commit: 0123456789abcdef") {
		t.Errorf("promotion commit:\n%s", msg)
	}
}

// 11. Every run is recorded, also those that make no deployment commit — refused in preflight,
// already deployed — and the pipeline success rate counts them.
func TestRunsWithoutADeploymentCommitAreRecordedAndCounted(t *testing.T) {
	w := setup(t, "runs")
	img := w.push(t, "wanderlust-backend", "2.0.0")
	since := time.Now().Add(-time.Minute)
	refused := w.deployOf(t, "runs", "dev", img)
	refused.Argo.Token = "not-a-token-5e4d3c"
	if rep, err := Run(context.Background(), refused, nil); err == nil || stage(rep, "record").Status != report.Succeeded {
		t.Fatalf("refused run: %v\n%s", err, rep.Text())
	}
	if rep, err := Run(context.Background(), w.deployOf(t, "runs", "dev", img), nil); err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	rep, err := Run(context.Background(), w.deployOf(t, "runs", "dev", img), nil)
	if err != nil || rep.Result != report.AlreadyDeployed || stage(rep, "record").Status != report.Succeeded {
		t.Fatalf("rerun: %v\n%s", err, rep.Text())
	}
	envs, err := metrics.Collect(context.Background(), w.gitOpts("runs"), metrics.Options{Env: "dev", Since: since}, 0)
	if err != nil || len(envs) != 1 {
		t.Fatalf("%+v %v", envs, err)
	}
	if e := envs[0]; e.Deployments != 1 || e.Runs != 2 || e.PipelineSuccessRate != 2.0/3 {
		t.Errorf("deployments %d, runs without one %d, pipeline success %.3f (want 1, 2, 0.667)", e.Deployments, e.Runs, e.PipelineSuccessRate)
	}
	if log, err := gitserver.Output(w.git.GitDir("runs"), "log", "-1", "--notes=runs", "--format=%N", "main"); err != nil ||
		!strings.Contains(log, `"result":"already deployed"`) {
		t.Errorf("notes on the head: %q %v", log, err)
	}
}
