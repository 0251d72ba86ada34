package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

const planted = "tok-planted-7c1d2e3f4a5b"

func gitops(t *testing.T) *gitserver.Server {
	t.Helper()
	srv, err := gitserver.Start(t.TempDir(), "x-access-token", planted)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	seed := t.TempDir()
	if err := os.CopyFS(filepath.Join(seed, "kubernetes"), os.DirFS("../kubernetes")); err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateRepo("gitops", "main", os.DirFS(seed)); err != nil {
		t.Fatal(err)
	}
	return srv
}

// captureStderr returns what f printed on standard error.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() { b, _ := io.ReadAll(r); done <- string(b) }()
	defer func() { os.Stderr = old }()
	f()
	w.Close()
	return <-done
}

// TestBumpReadsTheTokenSecretThroughTheSession runs the module function as `dagger call bump` would,
// with the token as a secret that only the (stand-in) engine session can resolve.
func TestBumpReadsTheTokenSecretThroughTheSession(t *testing.T) {
	srv := gitops(t)
	session := daggerfake.Start(t, func(q string) (any, error) {
		if strings.Contains(q, "plaintext") {
			return daggerfake.Nest("secret", "plaintext", planted), nil
		}
		return nil, nil
	})
	token := dagger.Connect().Secret("env://GIT_TOKEN")

	var sha string
	var err error
	stderr := captureStderr(t, func() {
		sha, err = (&Wanderlust{}).Bump(context.Background(), srv.RepoURL("gitops"),
			[]string{"wanderlust-backend=2.0.0,wanderlust-frontend=2.0.1"}, "staging", "", "main",
			token, "x-access-token", nil, "", "Bot", "bot@example.test", "", "", false, 10)
	})
	if err != nil {
		t.Fatal(err)
	}
	if head, _ := srv.Head("gitops", "main"); sha != head {
		t.Errorf("returned %q, remote head %s", sha, head)
	}
	if !strings.Contains(stderr, "wanderlust-frontend: 1.0.0 → 2.0.1") {
		t.Errorf("stderr lacks the summary:\n%s", stderr)
	}
	for where, s := range map[string]string{"stderr": stderr, "engine queries": session.All(), "request URIs": strings.Join(srv.Seen(), "\n")} {
		if strings.Contains(s, planted) {
			t.Errorf("the token appears in %s", where)
		}
	}
	t.Logf("engine queries: %s", session.All())
	if !strings.Contains(session.All(), "env://GIT_TOKEN") {
		t.Errorf("the secret was not read through the session: %q", session.All())
	}

	// Same again: nothing to do.
	again, err := (&Wanderlust{}).Bump(context.Background(), srv.RepoURL("gitops"),
		[]string{"wanderlust-backend=2.0.0", "wanderlust-frontend=2.0.1"}, "staging", "", "main",
		token, "x-access-token", nil, "", "Bot", "bot@example.test", "", "", false, 10)
	if err != nil || again != "unchanged" {
		t.Errorf("rerun = %q, %v; want unchanged", again, err)
	}

	// Someone reverts the bump on the remote; the identical call must bump again (on a real engine it
	// is never served from the function cache: TestEveryFunctionWithSideEffectsIsNeverCached).
	work := t.TempDir()
	for _, args := range [][]string{{"clone", "-q", srv.GitDir("gitops"), work}, {"-C", work, "revert", "--no-edit", "HEAD"}, {"-C", work, "push", "-q", "origin", "main"}} {
		if err := gitserver.Git("", args...); err != nil {
			t.Fatal(err)
		}
	}
	reverted, _ := srv.Head("gitops", "main")
	requests := srv.Requests()
	third, err := (&Wanderlust{}).Bump(context.Background(), srv.RepoURL("gitops"),
		[]string{"wanderlust-backend=2.0.0", "wanderlust-frontend=2.0.1"}, "staging", "", "main",
		token, "x-access-token", nil, "", "Bot", "bot@example.test", "", "", false, 10)
	if err != nil || third == sha || third == reverted || srv.Requests() == requests {
		t.Fatalf("rerun after a revert = %q, %v (first %s, reverted head %s); want a new commit", third, err, sha, reverted)
	}
	if k, _ := srv.Show("gitops", "main", "kubernetes/overlays/staging/kustomization.yaml"); !strings.Contains(k, `newTag: "2.0.1"`) {
		t.Errorf("the rerun did not restore the values:\n%s", k)
	}
}

func TestBumpDryRunPrintsTheDiff(t *testing.T) {
	srv := gitops(t)
	daggerfake.Start(t, func(string) (any, error) { return daggerfake.Nest("secret", "plaintext", planted), nil })
	before, _ := srv.Head("gitops", "main")
	out, err := (&Wanderlust{}).Bump(context.Background(), srv.RepoURL("gitops"),
		[]string{"wanderlust-backend=3.0.0"}, "prod", "", "main",
		dagger.Connect().Secret("env://GIT_TOKEN"), "x-access-token", nil, "", "Bot", "bot@example.test", "", "", true, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "+    newTag: \"3.0.0\"") || !strings.Contains(out, "kubernetes/overlays/prod/kustomization.yaml") {
		t.Errorf("dry run output:\n%s", out)
	}
	if after, _ := srv.Head("gitops", "main"); after != before {
		t.Error("a dry run pushed")
	}
}

func TestBumpRejectsBadImagesBeforeAnything(t *testing.T) {
	session := daggerfake.Start(t, func(string) (any, error) { return nil, nil })
	_, err := (&Wanderlust{}).Bump(context.Background(), "https://example.invalid/x.git",
		[]string{"wanderlust-backend=bad tag"}, "dev", "", "main",
		dagger.Connect().Secret("env://GIT_TOKEN"), "x-access-token", nil, "", "Bot", "bot@example.test", "", "", false, 10)
	if err == nil || !strings.Contains(err.Error(), "tag") {
		t.Fatalf("err = %v", err)
	}
	if n := len(session.Queries()); n != 0 {
		t.Errorf("%d engine queries for an invalid argument", n)
	}
}

func TestVerifyImagesReadsThePasswordThroughTheSession(t *testing.T) {
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "bot" || p != planted {
			w.Header().Set("WWW-Authenticate", `Basic realm="t"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/wanderlust-app/wanderlust-backend:1.4.0"
	img, _ := random.Image(256, 1)
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "bot", Password: planted})); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	session := daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		return daggerfake.Default(field, q)
	}))
	out, err := (&Wanderlust{}).VerifyImages(context.Background(), []string{ref}, "bot", dagger.Connect().Secret("env://REGISTRY_TOKEN"))
	if err != nil {
		t.Fatal(err)
	}
	if out != ref+"@"+want.String() {
		t.Errorf("got %q, want %s@%s", out, ref, want)
	}
	if strings.Contains(session.All(), planted) {
		t.Error("the password appears in an engine query")
	}
	_, err = (&Wanderlust{}).VerifyImages(context.Background(), []string{ref[:len(ref)-5] + "9.9.9"}, "bot", dagger.Connect().Secret("env://REGISTRY_TOKEN"))
	if err == nil || !strings.Contains(err.Error(), "not pushed") {
		t.Errorf("missing tag: %v", err)
	}
}

func TestScanReportGate(t *testing.T) {
	if _, err := (&ScanReport{Passed: false, Reason: "scan gate failed: trivy: 1 blocking"}).Gate(); err == nil || !strings.Contains(err.Error(), "trivy: 1 blocking") {
		t.Errorf("failed gate: %v", err)
	}
	if msg, err := (&ScanReport{Passed: true}).Gate(); err != nil || msg == "" {
		t.Errorf("passed gate: %q, %v", msg, err)
	}
	if _, err := scanPolicy("SEVERE", 7, nil); err == nil {
		t.Error("bad --fail-on accepted")
	}
	if _, err := scanPolicy("HIGH", 11, nil); err == nil {
		t.Error("bad --max-cvss accepted")
	}
}

// TestDeployWithGivenImagesSkipsTheContainerStages runs the module's deploy as `dagger call deploy
// --backend-tag … --frontend-tag …` would: no container is needed, so it runs here for real against
// the git remote and an OCI registry (no Argo CD given: the sync is skipped and reported so).
func TestDeployWithGivenImagesSkipsTheContainerStages(t *testing.T) {
	srv := gitops(t)
	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	registry := strings.TrimPrefix(reg.URL, "http://") + "/wanderlust-app"
	for _, img := range []string{"wanderlust-backend:7.0.0", "wanderlust-frontend:7.0.1"} {
		i, _ := random.Image(128, 1)
		r, _ := name.ParseReference(registry + "/" + img)
		if err := remote.Write(r, i); err != nil {
			t.Fatal(err)
		}
	}
	daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		return daggerfake.Default(field, q)
	}))
	token := dagger.Connect().Secret("env://GIT_TOKEN")
	out, err := (&Wanderlust{}).Deploy(context.Background(), nil, "staging", registry, srv.RepoURL("gitops"), "", "7.0.0", "7.0.1",
		"abcdef0", "", "", nil, true, "main", token, "", nil, "", "", false, false, false, true, 60, false, false, nil, "", 0, "starttls", "", nil, "", nil, "json")
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Result string
		Stages []struct{ Name, Status string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := []string{}
	for _, s := range rep.Stages {
		got = append(got, s.Name+":"+s.Status)
	}
	want := "preflight:succeeded scan:skipped build:skipped publish:skipped verify:succeeded bump:succeeded sync:skipped notify:skipped"
	if rep.Result != "succeeded" || strings.Join(got, " ") != want {
		t.Errorf("stages %v (result %s), want %s", got, rep.Result, want)
	}
	k, _ := srv.Show("gitops", "main", "kubernetes/overlays/staging/kustomization.yaml")
	if !strings.Contains(k, "newName: "+registry+"/wanderlust-frontend") || !strings.Contains(k, `newTag: "7.0.1"`) || !strings.Contains(k, "digest: sha256:") {
		t.Errorf("staging overlay:\n%s", k)
	}
	if strings.Contains(out, planted) {
		t.Error("the token is in the report")
	}
	if _, err := (&Wanderlust{}).Deploy(context.Background(), nil, "staging", registry, srv.RepoURL("gitops"), "", "7.0.0", "",
		"", "", "", nil, false, "main", token, "", nil, "", "", false, false, false, true, 60, false, false, nil, "", 0, "starttls", "", nil, "", nil, "json"); err == nil {
		t.Error("--backend-tag without --frontend-tag accepted")
	}
}
