package deploy

// The deploy verdict, end to end on the loopback Argo CD, the smart-HTTP git remote, an OCI registry
// and an SMTP server: done means our values run; a newer commit that replaced them is "superseded";
// a rerun of what runs is "already deployed"; only failures our change caused are rolled back, field
// by field; everything about Argo CD is checked before anything is pushed.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	applicationpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/application"
	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"

	"github.com/argoproj/argo-cd/v2/pkg/apiclient"

	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/testsupport/argocdharness"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// deployOf is a deployment of images to env (app <repo>-<env>) with rollback and mail, as the module
// wires it.
func (w *world) deployOf(t *testing.T, repo, env string, images ...string) Options {
	argo := w.argo(t, repo+"-"+env)
	return Options{Images: images, Bump: bump.Options{Git: w.gitOpts(repo), Env: env}, Argo: &argo, Rollback: true, Notify: w.mail()}
}

// onPush runs f once, right after our bump's push landed (before the wait starts).
func onPush(o *Options, f func()) {
	var once sync.Once
	o.Bump.Git.Log = func(s string) {
		if strings.HasPrefix(s, "pushed ") {
			once.Do(f)
		}
	}
}

// other bumps as another run would.
func (w *world) other(t *testing.T, repo, env string, updates ...string) string {
	t.Helper()
	g := w.gitOpts(repo)
	g.Author = git.Signature{Name: "Other Run", Email: "other@example.test"}
	var us []string
	us = append(us, updates...)
	res, err := bump.Run(context.Background(), bump.Options{Git: g, Env: env, Updates: mustUpdates(t, us...)})
	if err != nil {
		t.Fatal(err)
	}
	return res.SHA
}

func mustUpdates(t *testing.T, refs ...string) (out []manifest.Update) {
	for _, r := range refs {
		out = append(out, mustUpdate(t, r)...)
	}
	return out
}

func stage(r *report.Run, name string) report.Stage {
	for _, s := range r.Stages {
		if s.Name == name {
			return s
		}
	}
	return report.Stage{}
}

func TestSupersededByALaterBumpOfTheSameImage(t *testing.T) {
	w := setup(t, "sup")
	ours, theirs := w.push(t, "wanderlust-backend", "2.0.0"), w.push(t, "wanderlust-backend", "2.0.1")
	o := w.deployOf(t, "sup", "dev", ours)
	var later string
	onPush(&o, func() { later = w.other(t, "sup", "dev", theirs) })
	rep, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	if rep.Result != report.Superseded || !strings.Contains(rep.Reason, later[:12]) || !strings.Contains(rep.Reason, "Other Run") ||
		!strings.Contains(rep.Reason, ":2.0.1") || rep.DORA.Failed || rep.DORA.LeadTime != 0 {
		t.Errorf("report:\n%s", rep.Text())
	}
	if head, _ := w.git.Head("sup", "main"); head != later {
		t.Error("something was pushed after the later bump (a rollback?)")
	}
	if subject, _ := w.lastMail(t); !strings.Contains(subject, "SUPERSEDED") {
		t.Errorf("mail subject %q", subject)
	}
}

func TestSupersededByARevertOfOurChange(t *testing.T) {
	w := setup(t, "rev")
	o := w.deployOf(t, "rev", "dev", w.push(t, "wanderlust-backend", "2.0.0"))
	var revert string
	onPush(&o, func() { revert = w.revertHead(t, "rev") })
	rep, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	// Ancestry would call this a success: the revert contains our commit.
	if rep.Result != report.Superseded || !strings.Contains(rep.Reason, revert[:12]) || !strings.Contains(rep.Reason, "Revert") {
		t.Errorf("report:\n%s", rep.Text())
	}
}

func TestRerunOfWhatRunsIsAlreadyDeployedAndNeverRollsBack(t *testing.T) {
	w := setup(t, "again")
	img := w.push(t, "wanderlust-backend", "2.0.0")
	if rep, err := Run(context.Background(), w.deployOf(t, "again", "dev", img), nil); err != nil || rep.Result != report.Succeeded {
		t.Fatalf("first deploy: %v\n%s", err, rep.Text())
	}
	// An application-code commit lands on the branch: the head is no deploy commit of ours.
	work := t.TempDir()
	for _, args := range [][]string{{"clone", "-q", w.git.GitDir("again"), work}, {"-C", work, "commit", "-q", "--allow-empty", "-m", "docs: unrelated"}, {"-C", work, "push", "-q", "origin", "main"}} {
		if err := gitserver.Git("", args...); err != nil {
			t.Fatal(err)
		}
	}
	unrelated, _ := w.git.Head("again", "main")
	start := time.Now()
	rep, err := Run(context.Background(), w.deployOf(t, "again", "dev", img), nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	if rep.Result != report.AlreadyDeployed || stage(rep, "sync").Output["outcome"] != report.AlreadyDeployed || rep.DORA.Failed || rep.DORA.RolledBack {
		t.Errorf("report:\n%s", rep.Text())
	}
	if head, _ := w.git.Head("again", "main"); head != unrelated {
		t.Error("a rerun pushed (or reverted someone else's commit)")
	}
	if took > 10*time.Second {
		t.Errorf("the rerun took %s, want < 10s", took)
	}
	t.Logf("rerun of an already deployed version: %s", took.Round(time.Millisecond))
}

func TestRollbackRestoresOurFieldAfterALaterDeployOfAnotherImage(t *testing.T) {
	w := setup(t, "field")
	broken, frontend := w.push(t, "wanderlust-backend", argocdharness.NeverReady), w.push(t, "wanderlust-frontend", "4.0.0")
	o := w.deployOf(t, "field", "dev", broken)
	argo := *o.Argo
	var once sync.Once
	var later string
	argo.Log = func(s string) {
		t.Log(s)
		// The failure is detected; before our rollback is pushed, another run deploys the frontend
		// into the same overlay file. A whole-file revert would now conflict.
		if strings.HasPrefix(s, "rolling back") {
			once.Do(func() { later = w.other(t, "field", "dev", frontend) })
		}
	}
	o.Argo = &argo
	rep, err := Run(context.Background(), o, nil)
	if err == nil {
		t.Fatal("a rollout that never becomes Ready succeeded")
	}
	if !rep.DORA.Failed || !rep.DORA.RolledBack || stage(rep, "rollback").Status != report.Succeeded || stage(rep, "rollback").Duration <= 0 {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	k, _ := w.git.Show("field", "main", "kubernetes/overlays/dev/kustomization.yaml")
	if strings.Contains(k, argocdharness.NeverReady) || !strings.Contains(k, w.registry+"/wanderlust-frontend") || !strings.Contains(k, `newTag: "4.0.0"`) {
		t.Errorf("after the rollback:\n%s", k)
	}
	log, _ := gitserver.Output(w.git.GitDir("field"), "log", "--format=%H %s", "-3", "main")
	if !strings.Contains(log, later) || !strings.Contains(log, "Roll back") {
		t.Errorf("history:\n%s", log)
	}
}

func TestNoRollbackWhileWaitingOnSomeoneElsesFailingOperation(t *testing.T) {
	w := setup(t, "busy", "manual")
	if err := w.h.Application("busy-manual", w.git.RepoURL("busy"), "manual", "busy-manual", false); err != nil {
		t.Fatal(err)
	}
	// Someone else syncs a broken revision (another branch) with retries: their operation fails
	// again and again while we wait.
	work := t.TempDir()
	if err := gitserver.Git("", "clone", "-q", w.git.GitDir("busy"), work); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(work, "kubernetes/overlays/manual/kustomization.yaml"), []byte("resources: [missing.yaml]\n"), 0o644)
	for _, args := range [][]string{{"checkout", "-q", "-b", "broken"}, {"commit", "-qam", "broken"}, {"push", "-q", "origin", "broken"}} {
		if err := gitserver.Git(work, args...); err != nil {
			t.Fatal(err)
		}
	}
	broken, _ := gitserver.Output(work, "rev-parse", "HEAD")
	syncOther(t, w, "busy-manual", strings.TrimSpace(broken))

	o := w.deployOf(t, "busy", "manual", w.push(t, "wanderlust-backend", "2.0.0"))
	o.Argo.Timeout = 8 * time.Second
	rep, err := Run(context.Background(), o, nil)
	if err == nil {
		t.Fatalf("succeeded while someone else's operation held the application:\n%s", rep.Text())
	}
	bumped := stage(rep, "bump").Output["sha"]
	if head, _ := w.git.Head("busy", "main"); head != bumped || rep.DORA.RolledBack || rep.DORA.Failed || !errors.Is(err, argocd.ErrTimeout) {
		t.Errorf("err %v; head %s, bump %s\n%s", err, head, bumped, rep.Text())
	}
}

// revertHead reverts the head commit of repo's main as another writer would, and returns the revert.
func (w *world) revertHead(t *testing.T, repo string) string {
	t.Helper()
	work := t.TempDir()
	for _, args := range [][]string{{"clone", "-q", w.git.GitDir(repo), work}, {"-C", work, "revert", "--no-edit", "HEAD"}, {"-C", work, "push", "-q", "origin", "main"}} {
		if err := gitserver.Git("", args...); err != nil {
			t.Error(err)
		}
	}
	head, _ := w.git.Head(repo, "main")
	return head
}

// applications is Argo CD's application API as the admin (closed when the test ends).
func (w *world) applications(t *testing.T) applicationpkg.ApplicationServiceClient {
	t.Helper()
	c, err := apiclient.NewClient(&apiclient.ClientOptions{ServerAddr: w.h.Server, AuthToken: w.h.Token, PlainText: true,
		ConfigPath: filepath.Join(t.TempDir(), "config")})
	if err != nil {
		t.Fatal(err)
	}
	conn, apps, err := c.NewApplicationClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return apps
}

// syncOther starts someone else's sync of rev, retried for a while.
func syncOther(t *testing.T, w *world, app, rev string) {
	t.Helper()
	if _, err := w.applications(t).Sync(context.Background(), &applicationpkg.ApplicationSyncRequest{Name: &app, Revision: &rev,
		RetryStrategy: &v1alpha1.RetryStrategy{Limit: 5, Backoff: &v1alpha1.Backoff{Duration: "3s"}}}); err != nil {
		t.Fatal(err)
	}
}

func TestPreflightFailuresPushNothing(t *testing.T) {
	w := setup(t, "pre")
	img := w.push(t, "wanderlust-backend", "2.0.0")
	// An application that tracks another branch, one in a project whose role may only read, one in
	// a project with a deny window now.
	if err := w.h.App(argocdharness.AppSpec{Name: "pre-branch", RepoURL: w.git.RepoURL("pre"), Overlay: "dev", Namespace: "pre-branch", TargetRevision: "release"}); err != nil {
		t.Fatal(err)
	}
	if err := w.h.Project("readonly", `"roles":[{"name":"ci","policies":["p, proj:readonly:ci, applications, get, readonly/*, allow"]}]`); err != nil {
		t.Fatal(err)
	}
	if err := w.h.App(argocdharness.AppSpec{Name: "pre-rbac", RepoURL: w.git.RepoURL("pre"), Overlay: "dev", Namespace: "pre-rbac", Project: "readonly"}); err != nil {
		t.Fatal(err)
	}
	readOnly, err := w.h.ProjectToken("readonly", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.h.Project("frozen", `"syncWindows":[{"kind":"deny","schedule":"* * * * *","duration":"1h","applications":["*"]}]`); err != nil {
		t.Fatal(err)
	}
	if err := w.h.App(argocdharness.AppSpec{Name: "pre-window", RepoURL: w.git.RepoURL("pre"), Overlay: "dev", Namespace: "pre-window", Project: "frozen"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, want string
		edit       func(*argocd.Options)
	}{
		{"bad server", "cannot reach", func(a *argocd.Options) { a.Server = "127.0.0.1:1" }},
		{"bad token", "authentication failed", func(a *argocd.Options) { a.Token = "not-a-token-5e4d3c" }},
		{"unknown app", "not found", func(a *argocd.Options) { a.App = "pre-nope" }},
		{"tracks another branch", `from "release", but we push to branch "main"`, func(a *argocd.Options) { a.App = "pre-branch" }},
		{"RBAC may not sync", "may get pre-rbac but not sync it", func(a *argocd.Options) { a.App, a.Token = "pre-rbac", readOnly }},
		{"sync window", "sync window of project frozen blocks", func(a *argocd.Options) { a.App = "pre-window" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _ := w.git.Head("pre", "main")
			o := w.deployOf(t, "pre", "dev", img)
			c.edit(o.Argo)
			rep, err := Run(context.Background(), o, nil)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "preflight") {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if after, _ := w.git.Head("pre", "main"); after != before {
				t.Error("pushed despite the failed preflight")
			}
			if stage(rep, "bump").Name != "" || rep.DORA.Failed {
				t.Errorf("report:\n%s", rep.Text())
			}
			for _, secret := range []string{gitToken, w.h.Token, readOnly} {
				if strings.Contains(err.Error(), secret) {
					t.Error("a secret is in the error")
				}
			}
		})
	}
}

func TestMultiSourceApplicationDeploys(t *testing.T) {
	w := setup(t, "multi", "ms")
	if err := w.h.App(argocdharness.AppSpec{Name: "multi-ms", RepoURL: w.git.RepoURL("multi"), Overlay: "ms", Namespace: "multi-ms", Auto: true, MultiSource: true}); err != nil {
		t.Fatal(err)
	}
	o := w.deployOf(t, "multi", "ms", w.push(t, "wanderlust-backend", "2.0.0"))
	rep, err := Run(context.Background(), o, nil)
	if err != nil || rep.Result != report.Succeeded || stage(rep, "sync").Output["health"] != "Healthy" {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	if head, _ := w.git.Head("multi", "main"); stage(rep, "sync").Output["synced"] != head {
		t.Errorf("synced %s, head %s", stage(rep, "sync").Output["synced"], head)
	}
}

func TestSkewedPipelineClockStillRecognisesItsOperation(t *testing.T) {
	w := setup(t, "skew", "manual")
	if err := w.h.Application("skew-manual", w.git.RepoURL("skew"), "manual", "skew-manual", false); err != nil {
		t.Fatal(err)
	}
	o := w.deployOf(t, "skew", "manual", w.push(t, "wanderlust-backend", "2.0.0"))
	o.Argo.Timeout = time.Minute
	o.Argo.Now = func() time.Time { return time.Now().Add(5 * time.Second) } // the pipeline's clock runs 5 s ahead
	o.RunID = "skew-run-1"
	rep, err := Run(context.Background(), o, nil)
	if err != nil || rep.Result != report.Succeeded {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	// The operation that synced our values was recognised as ours (by its run id), whatever the clocks.
	if got := stage(rep, "sync").Output["operation"]; got != "ours (run skew-run-1)" {
		t.Errorf("operation %q, want it recognised as ours\n%s", got, rep.Text())
	}
}

func TestDryRunOfANewVersionPushesAndMailsNothing(t *testing.T) {
	w := setup(t, "dry")
	before, _ := w.git.Head("dry", "main")
	o := w.deployOf(t, "dry", "dev", w.registry+"/wanderlust-backend:9.9.9", w.registry+"/wanderlust-frontend:9.9.9") // never pushed
	o.DryRun, o.SkipVerify = true, "--dry-run: the built images are not pushed"
	rep, err := Run(context.Background(), o, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	if rep.Result != report.DryRun || !strings.Contains(stage(rep, "bump").Output["diff"], `+    newTag: "9.9.9"`) ||
		!strings.Contains(stage(rep, "sync").Output["reason"], "would wait for dry-dev") || stage(rep, "notify").Status != report.Skipped {
		t.Errorf("report:\n%s", rep.Text())
	}
	if after, _ := w.git.Head("dry", "main"); after != before {
		t.Error("a dry run pushed")
	}
	if n := len(w.smtp.Messages()); n != 0 {
		t.Errorf("a dry run sent %d mails", n)
	}
}

// The module's sync: a revision already in git, judged by the image values its commit set (the
// application's own path), after the same preflight.
func TestSyncOfARevisionInGit(t *testing.T) {
	w := setup(t, "syn")
	g := w.gitOpts("syn")
	res, err := bump.Run(context.Background(), bump.Options{Git: g, Env: "dev", Updates: mustUpdates(t, w.push(t, "wanderlust-frontend", "6.0.0"))})
	if err != nil {
		t.Fatal(err)
	}
	argo := w.argo(t, "syn-dev")
	argo.Revision = res.SHA
	out, err := Sync(context.Background(), SyncOptions{Argo: argo, Git: g, Rollback: true})
	if err != nil || out.Deployed.Outcome != argocd.Deployed || out.Deployed.SyncedRevision != res.SHA {
		t.Fatalf("%+v %v", out, err)
	}
	// Without the repository nothing can be rolled back.
	if _, err := Sync(context.Background(), SyncOptions{Argo: argo, Rollback: true}); err == nil || !strings.Contains(err.Error(), "--rollback needs --repo") {
		t.Errorf("err = %v", err)
	}
}

// The application answers 500 during the soak: the deployment failed (our change), it is rolled back
// and Healthy again at the rollback, the mail names the check, and the record says so.
func TestFailedVerificationRollsBackAndIsRecorded(t *testing.T) {
	w := setup(t, "probe")
	var calls atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 2 {
			http.Error(rw, "upstream mongodb: connection refused", http.StatusInternalServerError)
			return
		}
		rw.Write([]byte("ok"))
	}))
	defer app.Close()
	o := w.deployOf(t, "probe", "dev", w.push(t, "wanderlust-backend", "2.0.0"))
	o.Probe = &probe.Options{URLs: []string{app.URL + "/api/health?key=probe-secret-123"}, For: 5 * time.Second, Interval: 100 * time.Millisecond}
	rep, err := Run(context.Background(), o, nil)
	if err == nil || !strings.Contains(err.Error(), "verification failed") || !strings.Contains(err.Error(), "status 500") {
		t.Fatalf("err = %v\n%s", err, rep.Text())
	}
	bumped := stage(rep, "bump").Output["sha"]
	if !rep.DORA.Failed || !rep.DORA.RolledBack || stage(rep, "rollback").Status != report.Succeeded || stage(rep, "verify-app").Status != report.Failed {
		t.Fatalf("report:\n%s", rep.Text())
	}
	k, _ := w.git.Show("probe", "main", "kubernetes/overlays/dev/kustomization.yaml")
	if strings.Contains(k, "2.0.0") {
		t.Errorf("not rolled back:\n%s", k)
	}
	subject, body := w.lastMail(t)
	if !strings.Contains(subject, "FAILURE") || !strings.Contains(body, "/api/health") || !strings.Contains(body, "status 500") {
		t.Errorf("mail %q:\n%s", subject, body)
	}
	note, err := gitserver.Output(w.git.GitDir("probe"), "notes", "--ref=deployments", "show", bumped)
	head, _ := w.git.Head("probe", "main")
	if err != nil || !strings.Contains(note, `"rolledBack": true`) || !strings.Contains(note, `"revert": "`+head+`"`) ||
		!strings.Contains(note, `"changeFailed": true`) || !strings.Contains(note, `"restored"`) || !strings.Contains(note, "/api/health") {
		t.Errorf("note on %s: %q (%v)", bumped, note, err)
	}
	// The URL's query never leaves the process; the response's excerpt is in the report (and its
	// mail) only, not in the note.
	if !strings.Contains(body, "upstream mongodb") || strings.Contains(note, "upstream mongodb") {
		t.Errorf("excerpt: in the mail %v, in the note %v", strings.Contains(body, "upstream mongodb"), strings.Contains(note, "upstream mongodb"))
	}
	for _, text := range []string{note, body, subject, string(rep.JSON()), rep.Reason} {
		if strings.Contains(text, "probe-secret-123") {
			t.Errorf("the URL's query leaked: %.300q", text)
		}
	}
}
