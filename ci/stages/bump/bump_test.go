package bump

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// token is planted: it must never show up in an error, a log line, a commit or a request URI.
const token = "tok-5ecret-9f8e7d6c5b4a"

// urlToken is a token a user pasted into a URL (not the one passed as a secret).
const urlToken = "tok-in-url-0a9b8c7d"

const digest1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// remote starts a real smart-HTTP remote holding this repository's kubernetes/ tree plus a "qa"
// overlay (a copy of dev), so that four overlays × two images give eight independent fields.
// The server offers partial clones, as GitHub and GitLab do; remoteWith(t, false) does not.
func remote(t *testing.T) *gitserver.Server { return remoteWith(t, true) }

func remoteWith(t *testing.T, partial bool) *gitserver.Server {
	t.Helper()
	srv, err := gitserver.Start(t.TempDir(), "ci-bot", token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.NoPartialClone = !partial
	seed := t.TempDir()
	if err := os.CopyFS(filepath.Join(seed, "kubernetes"), os.DirFS("../../../kubernetes")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(seed, "kubernetes/overlays/qa"), os.DirFS("../../../kubernetes/overlays/dev")); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateRepo("gitops", "main", os.DirFS(seed)); err != nil {
		t.Fatal(err)
	}
	return srv
}

// logs collects the git stage's progress lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }
func (l *logs) all() string  { l.mu.Lock(); defer l.mu.Unlock(); return strings.Join(l.lines, "\n") }

func opts(srv *gitserver.Server, l *logs, env string, updates ...string) Options {
	o := Options{
		Git: git.Options{
			URL:     srv.RepoURL("gitops"),
			Branch:  "main",
			Auth:    git.Auth{Username: "ci-bot", Token: token},
			Author:  git.Signature{Name: "Deploy Bot", Email: "deploy@wanderlust.test"},
			Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		},
		Env: env,
	}
	if l != nil {
		o.Git.Log = l.add
	}
	for _, s := range updates {
		u, err := manifest.ParseUpdate(s)
		if err != nil {
			panic(err)
		}
		o.Updates = append(o.Updates, u)
	}
	return o
}

func head(t *testing.T, srv *gitserver.Server) string {
	t.Helper()
	h, err := srv.Head("gitops", "main")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func show(t *testing.T, srv *gitserver.Server, rev, path string) string {
	t.Helper()
	s, err := srv.Show("gitops", rev, path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertNoSecret(t *testing.T, where, s string) {
	t.Helper()
	if strings.Contains(s, token) {
		t.Errorf("the token appears in %s: %s", where, s)
	}
}

func TestHappyPath(t *testing.T) {
	for _, partial := range []bool{true, false} {
		t.Run(fmt.Sprintf("partial=%v", partial), func(t *testing.T) { happyPath(t, remoteWith(t, partial)) })
	}
}

func happyPath(t *testing.T, srv *gitserver.Server) {
	l := &logs{}
	seed := head(t, srv)
	before := show(t, srv, seed, "kubernetes/overlays/dev/kustomization.yaml")

	o := opts(srv, l, "dev", "wanderlust-backend=1.2.3", "wanderlust-frontend=1.2.3@"+digest1)
	o.SourceCommit = "0123456789abcdef0123456789abcdef01234567"
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !res.Pushed || res.Attempts != 1 {
		t.Errorf("result = %+v, want changed, pushed, 1 attempt", res)
	}
	if got := head(t, srv); got != res.SHA {
		t.Errorf("remote head = %s, result SHA = %s", got, res.SHA)
	}

	// Exactly the expected bytes: the two tags changed, a digest line added after the frontend's tag.
	want := strings.Replace(before, "wanderlust-backend\n    newTag: \"1.0.0\"", "wanderlust-backend\n    newTag: \"1.2.3\"", 1)
	want = strings.Replace(want, "wanderlust-frontend\n    newTag: \"1.0.0\"\n", "wanderlust-frontend\n    newTag: \"1.2.3\"\n    digest: "+digest1+"\n", 1)
	if got := show(t, srv, "main", "kubernetes/overlays/dev/kustomization.yaml"); got != want {
		t.Errorf("dev kustomization:\n%s\nwant:\n%s", got, want)
	}
	// One file changed, one commit on top of the seed, by the configured author, with the message.
	stat, _ := gitserver.Output(srv.GitDir("gitops"), "diff", "--name-only", seed, "main")
	if strings.TrimSpace(stat) != "kubernetes/overlays/dev/kustomization.yaml" {
		t.Errorf("changed files: %q", stat)
	}
	meta, _ := gitserver.Output(srv.GitDir("gitops"), "show", "-s", "--format=%P|%an <%ae>|%cn|%B", "main")
	wantMsg := "deploy(dev): wanderlust-backend 1.2.3, wanderlust-frontend 1.2.3@sha256:111111111111\n\n" +
		"- wanderlust-backend: 1.0.0 → 1.2.3 (kubernetes/overlays/dev/kustomization.yaml)\n" +
		"- wanderlust-frontend: 1.0.0 → 1.2.3@sha256:111111111111 (kubernetes/overlays/dev/kustomization.yaml)\n\n" +
		"Source-Commit: 0123456789abcdef0123456789abcdef01234567\n"
	if wantMeta := seed + "|Deploy Bot <deploy@wanderlust.test>|Deploy Bot|" + wantMsg; strings.TrimRight(meta, "\n") != strings.TrimRight(wantMeta, "\n") {
		t.Errorf("commit:\n%q\nwant\n%q", meta, wantMeta)
	}
	if !strings.Contains(res.Diff, "-    newTag: \"1.0.0\"\n+    newTag: \"1.2.3\"") || !strings.Contains(res.Diff, "+    digest: "+digest1) {
		t.Errorf("diff:\n%s", res.Diff)
	}
	if res.Summary != "wanderlust-backend: 1.0.0 → 1.2.3 (kubernetes/overlays/dev/kustomization.yaml)\nwanderlust-frontend: 1.0.0 → 1.2.3@sha256:111111111111 (kubernetes/overlays/dev/kustomization.yaml)" {
		t.Errorf("summary: %q", res.Summary)
	}
	// The server's copy is complete and consistent after a push from a depth-1 clone.
	if out, err := gitserver.Output(srv.GitDir("gitops"), "fsck", "--strict"); err != nil {
		t.Errorf("fsck: %v %s", err, out)
	}
	assertNoSecret(t, "logs", l.all())
	assertNoSecret(t, "commit", meta)
	assertNoSecret(t, "request URIs", strings.Join(srv.Seen(), "\n"))

	// Rerun with the same values: no commit.
	again, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed || again.Pushed || again.SHA != res.SHA || again.Summary != "unchanged" {
		t.Errorf("rerun = %+v, want unchanged at %s", again, res.SHA)
	}
	if n, _ := srv.CommitCount("gitops", "main"); n != 2 {
		t.Errorf("commits = %d, want 2 (seed + one bump)", n)
	}
}

func TestConcurrentBumpsOfDifferentFieldsAllLand(t *testing.T) {
	for _, partial := range []bool{true, false} {
		t.Run(fmt.Sprintf("partial=%v", partial), func(t *testing.T) { concurrentBumps(t, remoteWith(t, partial)) })
	}
}

func concurrentBumps(t *testing.T, srv *gitserver.Server) {
	l := &logs{}
	type job struct{ env, image, tag string }
	var jobs []job
	for i, env := range []string{"dev", "staging", "prod", "qa"} {
		for j, img := range []string{"wanderlust-backend", "wanderlust-frontend"} {
			jobs = append(jobs, job{env, img, fmt.Sprintf("2.%d.%d", i, j)})
		}
	}
	errs := make([]error, len(jobs))
	results := make([]*Result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = Run(context.Background(), opts(srv, l, j.env, j.image+"="+j.tag))
		}()
	}
	wg.Wait()
	retried := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("bump %v: %v", jobs[i], err)
		}
		if results[i].Attempts > 1 {
			retried++
		}
	}
	if n, _ := srv.CommitCount("gitops", "main"); n != 1+len(jobs) {
		t.Errorf("commits = %d, want %d", n, 1+len(jobs))
	}
	for _, j := range jobs {
		k := show(t, srv, "main", "kubernetes/overlays/"+j.env+"/kustomization.yaml")
		if !strings.Contains(k, j.image+"\n    newTag: \""+j.tag+"\"") {
			t.Errorf("%s %s: tag %s missing from\n%s", j.env, j.image, j.tag, k)
		}
	}
	t.Logf("8 concurrent bumps: %d needed more than one push", retried)
	assertNoSecret(t, "logs", l.all())
}

// holdFirstPush makes the server hold the first push (receive-pack advertisement) it sees until release
// is called, so that another run can land in between.
func holdFirstPush(srv *gitserver.Server) (held <-chan struct{}, release func()) {
	h, r := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv.SetHook(func(req *http.Request) {
		if req.URL.Query().Get("service") != "git-receive-pack" {
			return
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(h)
			<-r
		}
	})
	return h, func() { close(r) }
}

func TestSameFieldRaceFailsWithConflict(t *testing.T) {
	srv := remote(t)
	held, release := holdFirstPush(srv)

	var loserErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, loserErr = Run(context.Background(), opts(srv, nil, "dev", "wanderlust-backend=3.0.0"))
	}()
	<-held
	winner, err := Run(context.Background(), opts(srv, nil, "dev", "wanderlust-backend=3.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	<-done

	var ce *git.ConflictError
	if !errors.As(loserErr, &ce) {
		t.Fatalf("loser error = %v, want a ConflictError", loserErr)
	}
	if ce.Theirs != "3.1.0" || ce.Ours != "3.0.0" || ce.Base != "1.0.0" || ce.Commit != winner.SHA {
		t.Errorf("conflict = %+v, want 1.0.0 → 3.1.0 by %s", ce, winner.SHA)
	}
	for _, want := range []string{`"3.1.0"`, winner.SHA[:12], "images[ghcr.io/wanderlust-app/wanderlust-backend]", "Deploy Bot"} {
		if !strings.Contains(loserErr.Error(), want) {
			t.Errorf("error %q does not mention %q", loserErr, want)
		}
	}
	// Nothing regressed: the winner's value stands, and the loser added no commit.
	if got := head(t, srv); got != winner.SHA {
		t.Errorf("head = %s, want the winner %s", got, winner.SHA)
	}
	if k := show(t, srv, "main", "kubernetes/overlays/dev/kustomization.yaml"); !strings.Contains(k, `newTag: "3.1.0"`) {
		t.Errorf("winner's value lost:\n%s", k)
	}
}

func TestDifferentFieldRaceRebases(t *testing.T) {
	srv := remote(t)
	held, release := holdFirstPush(srv)
	var slow *Result
	var slowErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		slow, slowErr = Run(context.Background(), opts(srv, nil, "dev", "wanderlust-backend=4.0.0"))
	}()
	<-held
	fast, err := Run(context.Background(), opts(srv, nil, "dev", "wanderlust-frontend=4.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	<-done
	if slowErr != nil {
		t.Fatal(slowErr)
	}
	if slow.Attempts != 2 {
		t.Errorf("attempts = %d, want 2 (rejected as stale, then rebased)", slow.Attempts)
	}
	parent, _ := gitserver.Output(srv.GitDir("gitops"), "rev-parse", slow.SHA+"^")
	if strings.TrimSpace(parent) != fast.SHA {
		t.Errorf("the rebased commit's parent = %s, want %s", parent, fast.SHA)
	}
	k := show(t, srv, "main", "kubernetes/overlays/dev/kustomization.yaml")
	if !strings.Contains(k, `newTag: "4.0.0"`) || !strings.Contains(k, `newTag: "4.0.1"`) {
		t.Errorf("both values should be there:\n%s", k)
	}
}

func TestWrongTokenIsAClearAuthError(t *testing.T) {
	srv := remote(t)
	l := &logs{}
	o := opts(srv, l, "dev", "wanderlust-backend=1.2.3")
	o.Git.Auth.Token = "tok-wrong-1234567890"
	seed := head(t, srv)
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("err = %v, want an authentication error", err)
	}
	if strings.Contains(err.Error(), "tok-wrong-1234567890") || strings.Contains(l.all(), "tok-wrong-1234567890") {
		t.Errorf("the token leaked: %v / %s", err, l.all())
	}
	if srv.Requests() > 2 {
		t.Errorf("%d requests: an auth failure must not be retried", srv.Requests())
	}
	if head(t, srv) != seed {
		t.Error("something was pushed")
	}
}

func TestRemoteDownRetriesThenFails(t *testing.T) {
	url, err := gitserver.ClosedURL()
	if err != nil {
		t.Fatal(err)
	}
	l := &logs{}
	o := Options{
		Git:     git.Options{URL: url, Auth: git.Auth{Token: token}, MaxAttempts: 3, Backoff: 5 * time.Millisecond, Log: l.add},
		Env:     "dev",
		Updates: []manifest.Update{{Name: "wanderlust-backend", Tag: "1"}},
	}
	start := time.Now()
	_, err = Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "unreachable after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if retries := strings.Count(l.all(), "retrying"); retries != 2 {
		t.Errorf("%d retries logged, want 2:\n%s", retries, l.all())
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v: retries are not bounded", time.Since(start))
	}
	assertNoSecret(t, "error", err.Error())
}

func TestBadInputChangesNothing(t *testing.T) {
	srv := remote(t)
	seed := head(t, srv)
	good := manifest.Update{Name: "wanderlust-backend", Tag: "1.2.3"}
	cases := []struct {
		name     string
		mutate   func(*Options)
		want     string
		noFetch  bool // rejected before any request
		wantNone bool
	}{
		{"bad tag", func(o *Options) { o.Updates = []manifest.Update{{Name: "wanderlust-backend", Tag: "bad tag"}} }, "tag", true, true},
		{"bad digest", func(o *Options) { o.Updates = []manifest.Update{{Name: "wanderlust-backend", Digest: "sha256:123"}} }, "digest", true, true},
		{"path leaves the repo", func(o *Options) { o.Env = ""; o.Path = "../../etc" }, "leaves the repository", true, true},
		{"absolute path", func(o *Options) { o.Env = ""; o.Path = "/etc/passwd" }, "relative to the repository root", true, true},
		{"credentials and a bad port in URL", func(o *Options) {
			o.Git.URL = "https://x:" + urlToken + "@example.invalid:badport/r.git"
		}, "repository URL", true, true},
		{"bad env", func(o *Options) { o.Env = "Dev/../x" }, "environment", true, true},
		{"unknown env", func(o *Options) { o.Env = "nope" }, `"kubernetes/overlays/nope"`, false, true},
		{"image nowhere", func(o *Options) { o.Updates = []manifest.Update{{Name: "wanderlust-worker", Tag: "1"}} }, "wanderlust-worker", false, true},
		{"bad template", func(o *Options) { o.Message = "{{.Nope}}" }, "message template", true, true},
		{"bad source commit", func(o *Options) { o.SourceCommit = "abc\nInjected: trailer" }, "source commit", true, true},
		{"credentials in URL", func(o *Options) { o.Git.URL = strings.Replace(o.Git.URL, "http://", "http://ci-bot:"+token+"@", 1) }, "must not carry credentials", true, true},
		{"bad branch", func(o *Options) { o.Git.Branch = "main..x" }, "branch", true, true},
		{"missing branch", func(o *Options) { o.Git.Branch = "release" }, `branch "release" not found`, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := opts(srv, nil, "dev")
			o.Updates = []manifest.Update{good}
			c.mutate(&o)
			before := srv.Requests()
			res, err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v (result %+v), want it to mention %q", err, res, c.want)
			}
			assertNoSecret(t, "error", err.Error())
			if strings.Contains(err.Error(), urlToken) {
				t.Errorf("the URL's token is in the error: %v", err)
			}
			if c.noFetch && srv.Requests() != before {
				t.Errorf("%d requests made for input that is invalid on its face", srv.Requests()-before)
			}
			if head(t, srv) != seed {
				t.Errorf("the remote moved")
			}
		})
	}
}

func TestDryRunPushesNothing(t *testing.T) {
	srv := remote(t)
	seed := head(t, srv)
	o := opts(srv, nil, "prod", "wanderlust-frontend=5.0.0")
	o.Git.DryRun = true
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Pushed || !strings.Contains(res.Diff, "+    newTag: \"5.0.0\"") || !strings.Contains(res.Diff, "kubernetes/overlays/prod/kustomization.yaml") {
		t.Errorf("dry run = %+v", res)
	}
	if head(t, srv) != seed {
		t.Error("a dry run pushed")
	}
}

// A monorepo: folders before kubernetes/ that a partial clone never fetches. The diff used to stop at
// the first of them and come out empty.
func TestDryRunDiffInAMonorepoFromAPartialClone(t *testing.T) {
	srv, err := gitserver.Start(t.TempDir(), "ci-bot", token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	seed := t.TempDir()
	for _, f := range []string{"app/backend/server.js", "app/frontend/index.html", "docs/README.md", "infra/main.tf"} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(seed, f)), 0o755)
		_ = os.WriteFile(filepath.Join(seed, f), []byte("content of "+f+"\n"), 0o644)
	}
	if err := os.CopyFS(filepath.Join(seed, "kubernetes"), os.DirFS("../../../kubernetes")); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateRepo("gitops", "main", os.DirFS(seed)); err != nil {
		t.Fatal(err)
	}
	o := opts(srv, nil, "prod", "wanderlust-frontend=5.0.0")
	o.Git.DryRun = true
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !strings.Contains(res.Diff, "+    newTag: \"5.0.0\"") || !strings.Contains(res.Diff, "--- a/kubernetes/overlays/prod/kustomization.yaml") ||
		strings.Contains(res.Diff, "a/app/") {
		t.Errorf("diff:\n%s", res.Diff)
	}
}

func TestSeedLayoutPlainDeployments(t *testing.T) {
	srv, err := gitserver.Start(t.TempDir(), "ci-bot", token)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.CreateRepo("gitops", "main", os.DirFS("../manifest/testdata/seed/before")); err != nil {
		t.Fatal(err)
	}
	o := opts(srv, nil, "")
	o.Path = "kubernetes"
	o.Updates = []manifest.Update{{Name: "wanderlust-backend-beta", Tag: "v2.2.0"}, {Name: "wanderlust-frontend-beta", Tag: "v2.2.0", Digest: digest1}}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"backend.yaml", "frontend.yaml"} {
		want, _ := os.ReadFile("../manifest/testdata/seed/after/kubernetes/" + f)
		if got := show(t, srv, res.SHA, "kubernetes/"+f); got != string(want) {
			t.Errorf("%s:\n%s\nwant\n%s", f, got, want)
		}
	}
	if !strings.HasPrefix(res.Message, "deploy(kubernetes): wanderlust-backend-beta v2.2.0, wanderlust-frontend-beta v2.2.0@sha256:111111111111\n") {
		t.Errorf("message: %q", res.Message)
	}
}

func TestCustomMessageTemplate(t *testing.T) {
	srv := remote(t)
	o := opts(srv, nil, "staging", "wanderlust-backend=7.0.0")
	o.Message = "chore: promote {{.Target}}{{range .Changes}} {{.Image}}={{.To}}{{end}} [skip ci]"
	o.SourceCommit = "abcdef1"
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := gitserver.Output(srv.GitDir("gitops"), "log", "-1", "--format=%B", res.SHA)
	if want := "chore: promote staging wanderlust-backend=7.0.0 [skip ci]\n\nSource-Commit: abcdef1\n"; strings.TrimRight(msg, "\n") != strings.TrimRight(want, "\n") {
		t.Errorf("message %q, want %q", msg, want)
	}
}
