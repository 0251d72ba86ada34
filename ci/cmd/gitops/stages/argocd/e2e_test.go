package argocd

// These tests run against a real Argo CD on loopback (testsupport/argocdharness: kube-apiserver,
// controller-manager, scheduler, etcd, kwok, redis, Argo CD server, repo-server and controller) that
// deploys this repository's kubernetes/ overlays from a real smart-HTTP git remote.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	applicationpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/application"
	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"

	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/testsupport/argocdharness"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

const gitToken = "git-e2e-token-5f4e3d"

// env is the shared Argo CD and a git remote, shared by the tests, each of which uses Applications of
// its own.
type env struct {
	h   *argocdharness.Harness
	git *gitserver.Server
}

var (
	gitOnce sync.Once
	gitSrv  *gitserver.Server
	gitErr  error
)

func setup(t testing.TB) *env {
	t.Helper()
	h := argocdharness.Shared(t)
	gitOnce.Do(func() {
		gitSrv, gitErr = gitserver.Start(filepath.Join(h.Dir, "git"), "argocd", gitToken)
		if gitErr == nil {
			argocdharness.OnClose(gitSrv.Close)
		}
	})
	if gitErr != nil {
		t.Fatal(gitErr)
	}
	return &env{h: h, git: gitSrv}
}

func TestMain(m *testing.M) { argocdharness.Main(m) }

// repo creates a git repository named name holding kubernetes/ and an "e2e" overlay (see
// argocdharness.SeedRepo) and an Application of that name deploying it into namespace name,
// auto-synced or not, and waits until it is Healthy.
func (e *env) repo(t testing.TB, name string, auto bool) (appName string) {
	t.Helper()
	if err := argocdharness.SeedRepo(e.git, "../../../../../kubernetes", name, map[string]string{"e2e": name}); err != nil {
		t.Fatal(err)
	}
	if err := e.h.AddRepository(e.git.RepoURL(name), "argocd", gitToken); err != nil {
		t.Fatal(err)
	}
	if err := e.h.Application(name, e.git.RepoURL(name), "e2e", name, auto); err != nil {
		t.Fatal(err)
	}
	seedSHA, _ := e.git.Head(name, "main")
	o := e.opts(name, seedSHA, t)
	o.Match = nil // the seed commit has no parent to compare with: only it counts
	// The first rollout of a namespace may overrun the test overlay's 5 s progress deadline on a
	// loaded machine; it recovers once the pods are Ready.
	o.Timeout, o.DegradedGrace = 4*time.Minute, time.Minute
	if _, err := Sync(context.Background(), o); err != nil {
		t.Fatalf("initial deployment of %s: %v", name, err)
	}
	return name
}

func (e *env) opts(app, rev string, t testing.TB) Options {
	return Options{
		Server: e.h.Server, Token: e.h.Token, PlainText: true, App: app, Revision: rev,
		Timeout: 2 * time.Minute, DegradedGrace: 3 * time.Second, RunID: "e2e-" + app,
		Match: e.matcher(app, rev, t),
		Log:   func(s string) { t.Log(s) },
	}
}

// matcher judges revisions by content against what commit rev set in the e2e overlay.
func (e *env) matcher(repo, rev string, t testing.TB) func(ctx context.Context, r string) (Match, error) {
	var in *intent.Intent
	return func(ctx context.Context, r string) (Match, error) {
		rd, err := git.Open(ctx, e.gitOpts(repo))
		if err != nil {
			return Match{}, err
		}
		if in == nil {
			if in, err = intent.Of(ctx, rd, rev, "kubernetes/overlays/e2e"); err != nil {
				return Match{}, err
			}
		}
		v, err := in.Judge(ctx, rd, r)
		return Match{Ours: v.Holds, Exact: v.Exact, Newer: v.Newer, By: v.By, Superseded: v.Superseded}, err
	}
}

func (e *env) gitOpts(repo string) git.Options {
	return git.Options{URL: e.git.RepoURL(repo), Auth: git.Auth{Username: "argocd", Token: gitToken}}
}

// push bumps the e2e overlay's images and returns the pushed SHA.
func (e *env) push(t testing.TB, repo string, updates ...string) string {
	t.Helper()
	var us []manifest.Update
	for _, s := range updates {
		u, err := manifest.ParseUpdate(s)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	res, err := bump.Run(context.Background(), bump.Options{Git: e.gitOpts(repo), Path: "kubernetes/overlays/e2e", Updates: us})
	if err != nil {
		t.Fatal(err)
	}
	return res.SHA
}

func TestE2EAutoSyncedAppReachesOurRevision(t *testing.T) {
	e := setup(t)
	app := e.repo(t, "auto-on", true)
	sha := e.push(t, app, "wanderlust-backend=1.1.0")
	res, err := Sync(context.Background(), e.opts(app, sha, t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.AutoSync || res.SyncedRevision != sha || res.Health != "Healthy" || res.Phase != "Succeeded" || res.Contained {
		t.Errorf("result %+v", res)
	}
	if !(res.Refresh <= res.Synced && res.Synced <= res.Healthy) {
		t.Errorf("durations out of order: %+v", res)
	}
	t.Logf("push → healthy %s (refresh %s, synced %s)", res.Healthy, res.Refresh, res.Synced)
}

func TestE2EManualSyncRequestsOurRevision(t *testing.T) {
	e := setup(t)
	app := e.repo(t, "auto-off", false)
	sha := e.push(t, app, "wanderlust-frontend=1.2.0")
	res, err := Sync(context.Background(), e.opts(app, sha, t))
	if err != nil {
		t.Fatal(err)
	}
	if res.AutoSync || res.SyncedRevision != sha || res.Health != "Healthy" {
		t.Errorf("result %+v", res)
	}
	var deploy struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct{ Image string } `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := e.h.Get("/apis/apps/v1/namespaces/"+app+"/deployments/frontend", &deploy); err != nil {
		t.Fatal(err)
	}
	if img := deploy.Spec.Template.Spec.Containers[0].Image; img != "ghcr.io/wanderlust-app/wanderlust-frontend:1.2.0" {
		t.Errorf("running image %s", img)
	}
}

func TestE2ESecondPushWhileSyncing(t *testing.T) {
	e := setup(t)
	app := e.repo(t, "two-pushes", true)
	first := e.push(t, app, "wanderlust-backend=2.0.0")
	second := e.push(t, app, "wanderlust-frontend=2.0.1")
	res, err := Sync(context.Background(), e.opts(app, first, t))
	if err != nil {
		t.Fatal(err)
	}
	// Argo CD deploys the branch head: the second commit, which contains ours.
	if res.SyncedRevision != second || !res.Contained {
		t.Errorf("synced %s contained=%v; want %s (containing %s)", res.SyncedRevision, res.Contained, second, first)
	}
	// A revision that the deployed head does not contain never counts: an unrelated commit times out.
	o := e.opts(app, "0123456789abcdef0123456789abcdef01234567", t)
	o.Timeout = 4 * time.Second
	if _, err := Sync(context.Background(), o); !errors.Is(err, ErrTimeout) {
		t.Errorf("unrelated revision: %v, want a timeout", err)
	}
}

func TestE2EFailedRolloutRollsBack(t *testing.T) {
	e := setup(t)
	app := e.repo(t, "rollback", true)
	bad := e.push(t, app, "wanderlust-backend="+argocdharness.NeverReady)
	out, err := SyncOrRollback(context.Background(), e.opts(app, bad, t), func(ctx context.Context, reason string) (*Undone, error) {
		rd, err := git.Open(ctx, e.gitOpts(app))
		if err != nil {
			return nil, err
		}
		in, err := intent.Of(ctx, rd, bad, "kubernetes/overlays/e2e")
		if err != nil {
			return nil, err
		}
		r, _, err := intent.Undo(ctx, e.gitOpts(app), in, reason)
		if err != nil {
			return nil, err
		}
		return &Undone{Revision: r.SHA, Match: e.matcher(app, r.SHA, t)}, nil
	})
	if err == nil {
		t.Fatal("a rollout that never becomes Ready deployed")
	}
	var we *Error
	if !errors.As(out.Failure, &we) || we.Health != "Degraded" || !strings.Contains(err.Error(), "Deployment/"+app+"/backend Degraded") {
		t.Errorf("failure %v", out.Failure)
	}
	if !out.RolledBack || out.Restored == nil || out.Restored.SyncedRevision != out.RollbackRevision || out.Restored.Health != "Healthy" {
		t.Fatalf("outcome %+v", out)
	}
	if head, _ := e.git.Head(app, "main"); head != out.RollbackRevision {
		t.Errorf("remote head %s, rollback %s", head, out.RollbackRevision)
	}
	k, _ := e.git.Show(app, "main", "kubernetes/overlays/e2e/kustomization.yaml")
	if strings.Contains(k, argocdharness.NeverReady) {
		t.Error("the revert did not restore the previous image")
	}
}

func TestE2ETimeoutSaysWhereItStood(t *testing.T) {
	e := setup(t)
	app := e.repo(t, "timeout", true)
	bad := e.push(t, app, "wanderlust-backend="+argocdharness.NeverReady+"-2")
	o := e.opts(app, bad, t)
	o.Timeout, o.DegradedGrace = 6*time.Second, time.Hour
	_, err := Sync(context.Background(), o)
	var we *Error
	if !errors.Is(err, ErrTimeout) || !errors.As(err, &we) || we.Sync == "" || we.Health == "" || !strings.Contains(err.Error(), app) {
		t.Fatalf("err = %v", err)
	}
}

func TestE2EServerRestartMidWait(t *testing.T) {
	e := setup(t)
	app := e.repo(t, "restart", true)
	sha := e.push(t, app, "wanderlust-backend=3.0.0")
	restarted := make(chan error, 1)
	var once sync.Once
	o := e.opts(app, sha, t)
	o.Log = func(s string) {
		t.Log(s)
		// At the first progress line the wait is under way: kill the API server, restart it a second later.
		once.Do(func() {
			e.h.StopServer()
			t.Log("argocd-server killed")
			go func() { time.Sleep(time.Second); restarted <- e.h.StartServer() }()
		})
	}
	res, err := Sync(context.Background(), o)
	if rerr := <-restarted; rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil || res.SyncedRevision != sha || res.Health != "Healthy" {
		t.Fatalf("res %+v err %v", res, err)
	}
}

func TestE2EWrongToken(t *testing.T) {
	e := setup(t)
	o := e.opts("auto-on", "0123456789abcdef0123456789abcdef01234567", t)
	o.Token = "wrong-token-9a8b7c6d"
	_, err := Sync(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), o.Token) {
		t.Fatalf("err = %v", err)
	}
}

func TestE2EWaitsForSomeoneElsesOperation(t *testing.T) {
	e := setup(t)
	app := e.repo(t, "busy", false)
	// Someone else syncs a broken revision (on another branch) with retries: their operation stays
	// in flight for several seconds.
	work := t.TempDir()
	if err := gitserver.Git("", "clone", "-q", e.git.GitDir(app), work); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(work, "kubernetes/overlays/e2e/kustomization.yaml"), []byte("resources: [missing.yaml]\n"), 0o644)
	for _, args := range [][]string{{"checkout", "-q", "-b", "broken"}, {"commit", "-qam", "broken"}, {"push", "-q", "origin", "broken"}} {
		if err := gitserver.Git(work, args...); err != nil {
			t.Fatal(err)
		}
	}
	broken, _ := gitserver.Output(work, "rev-parse", "HEAD")
	conn, apps, err := connect(e.opts(app, "x", t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rev := strings.TrimSpace(broken)
	if _, err := apps.Sync(context.Background(), &applicationpkg.ApplicationSyncRequest{Name: &app, Revision: &rev,
		RetryStrategy: &v1alpha1.RetryStrategy{Limit: 2, Backoff: &v1alpha1.Backoff{Duration: "3s"}}}); err != nil {
		t.Fatal(err)
	}

	sha := e.push(t, app, "wanderlust-backend=5.0.0")
	var lines []string
	o := e.opts(app, sha, t)
	o.Log = func(s string) { lines = append(lines, s); t.Log(s) }
	res, err := Sync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.SyncedRevision != sha || res.Health != "Healthy" {
		t.Errorf("result %+v", res)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "another operation is in flight") {
		t.Errorf("did not wait for the other operation:\n%s", strings.Join(lines, "\n"))
	}
}
