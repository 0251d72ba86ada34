package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
	"wanderlust.dev/pipeline/ci/testsupport/otlpcollector"
	"wanderlust.dev/pipeline/ci/testsupport/smtpserver"
)

const planted = "tok-planted-7c1d2e3f4a5b"

func gitopsRemote(t *testing.T) *gitserver.Server {
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
	srv := gitopsRemote(t)
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
		sha, err = gitopsModule(srv.RepoURL("gitops"), token).Bump(context.Background(),
			[]string{"wanderlust-backend=2.0.0,wanderlust-frontend=2.0.1"}, "staging", "", nil, "", "Bot", "bot@example.test", "", "", false, 10)
	})
	if err != nil {
		t.Fatal(err)
	}
	if head, _ := srv.Head("gitops", "main"); sha != head+"\n" {
		t.Errorf("returned %q, want the remote head %s as a line", sha, head)
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
	again, err := gitopsModule(srv.RepoURL("gitops"), token).Bump(context.Background(),
		[]string{"wanderlust-backend=2.0.0", "wanderlust-frontend=2.0.1"}, "staging", "", nil, "", "Bot", "bot@example.test", "", "", false, 10)
	if err != nil || again != "unchanged\n" {
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
	third, err := gitopsModule(srv.RepoURL("gitops"), token).Bump(context.Background(),
		[]string{"wanderlust-backend=2.0.0", "wanderlust-frontend=2.0.1"}, "staging", "", nil, "", "Bot", "bot@example.test", "", "", false, 10)
	if err != nil || third == sha || third == reverted+"\n" || srv.Requests() == requests {
		t.Fatalf("rerun after a revert = %q, %v (first %s, reverted head %s); want a new commit", third, err, sha, reverted)
	}
	if k, _ := srv.Show("gitops", "main", "kubernetes/overlays/staging/kustomization.yaml"); !strings.Contains(k, `newTag: "2.0.1"`) {
		t.Errorf("the rerun did not restore the values:\n%s", k)
	}
}

func TestBumpDryRunPrintsTheDiff(t *testing.T) {
	srv := gitopsRemote(t)
	daggerfake.Start(t, func(string) (any, error) { return daggerfake.Nest("secret", "plaintext", planted), nil })
	before, _ := srv.Head("gitops", "main")
	out, err := gitopsModule(srv.RepoURL("gitops"), dagger.Connect().Secret("env://GIT_TOKEN")).Bump(context.Background(),
		[]string{"wanderlust-backend=3.0.0"}, "prod", "", nil, "", "Bot", "bot@example.test", "", "", true, 10)
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
	_, err := gitopsModule("https://example.invalid/x.git", dagger.Connect().Secret("env://GIT_TOKEN")).Bump(context.Background(),
		[]string{"wanderlust-backend=bad tag"}, "dev", "", nil, "", "Bot", "bot@example.test", "", "", false, 10)
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
	own := strings.TrimPrefix(srv.URL, "http://") + "/wanderlust-app"
	out, err := (&Wanderlust{Registry: own, RegistryUsername: "bot", RegistryPassword: dagger.Connect().Secret("env://REGISTRY_TOKEN")}).VerifyImages(context.Background(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	if out != ref+"@"+want.String() {
		t.Errorf("got %q, want %s@%s", out, ref, want)
	}
	if strings.Contains(session.All(), planted) {
		t.Error("the password appears in an engine query")
	}
	_, err = (&Wanderlust{Registry: own, RegistryUsername: "bot", RegistryPassword: dagger.Connect().Secret("env://REGISTRY_TOKEN")}).VerifyImages(context.Background(), []string{ref[:len(ref)-5] + "9.9.9"})
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
// --backend-tag … --frontend-tag … --no-sync` would: no container is needed, so it runs here for
// real against the git remote and an OCI registry (push only: the sync is skipped and reported so).
// Without --no-sync, an empty --argocd-server (an unset CI variable) is refused before anything.
func TestDeployWithGivenImagesSkipsTheContainerStages(t *testing.T) {
	srv := gitopsRemote(t)
	registry := pushedImages(t)
	_, runs := startProgramSession(t, planted, func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		return daggerfake.Default(field, q)
	})
	token := useSession(t).Secret("env://GIT_TOKEN")
	before, _ := srv.Head("gitops", "main")
	_, err := callDeploy(deployArgs{env: "staging", registry: registry, repo: srv.RepoURL("gitops"), backend: "7.0.0", frontend: "7.0.1", gitToken: token})
	if head, _ := srv.Head("gitops", "main"); err == nil || !strings.Contains(err.Error(), "--no-sync") || head != before {
		t.Fatalf("without Argo CD and without --no-sync: err %v, pushed %v", err, head != before)
	}
	out, err := callDeploy(deployArgs{env: "staging", registry: registry, repo: srv.RepoURL("gitops"), backend: "7.0.0", frontend: "7.0.1", noSync: true,
		sourceCommit: "abcdef0", pinDigest: true, gitToken: token, reportFormat: "json"})
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
	want := "preflight:succeeded scan:skipped build:skipped publish:skipped verify:succeeded bump:succeeded sync:skipped record:succeeded notify:skipped"
	if rep.Result != "succeeded" || strings.Join(got, " ") != want {
		t.Errorf("stages %v (result %s), want %s", got, rep.Result, want)
	}
	// The deployment's record: trailers on its commit, and its outcome as a git note (read by git).
	msg, _ := gitserver.Output(srv.GitDir("gitops"), "log", "-1", "--format=%B", "main")
	note, err := gitserver.Output(srv.GitDir("gitops"), "notes", "--ref=deployments", "show", "main")
	if !strings.Contains(msg, "Deploy-Env: staging") || !strings.Contains(msg, "Deploy-Run: ") || !strings.Contains(msg, "Source-Commit: abcdef0") ||
		err != nil || !strings.Contains(note, `"result": "succeeded"`) || !strings.Contains(note, `"env": "staging"`) {
		t.Errorf("record: message %q, note %q (%v)", msg, note, err)
	}
	k, _ := srv.Show("gitops", "main", "kubernetes/overlays/staging/kustomization.yaml")
	if !strings.Contains(k, "newName: "+registry+"/wanderlust-frontend") || !strings.Contains(k, `newTag: "7.0.1"`) || !strings.Contains(k, "digest: sha256:") {
		t.Errorf("staging overlay:\n%s", k)
	}
	if strings.Contains(out, planted) {
		t.Error("the token is in the report")
	}
	// The GitOps program ran twice (preflight, run), its credentials as secret variables only.
	var phases []string
	for _, x := range runs.Runs() {
		var q gitops.Deploy
		x.request(t, &q)
		phases = append(phases, q.Phase)
		if !slices.Contains(x.Secrets, gitops.EnvGitToken) || strings.Contains(strings.Join(x.Args, " ")+strings.Join(x.Env, " "), planted) {
			t.Errorf("the git token is not a secret variable of the program, or is in its arguments: %q %q", x.Secrets, x.Args)
		}
	}
	if want := []string{gitops.PhasePreflight, gitops.PhaseRun}; !slices.Equal(phases, want) {
		t.Errorf("program runs %q, want %q (the refused call without Argo CD runs none)", phases, want)
	}
	if _, err := callDeploy(deployArgs{env: "staging", registry: registry, repo: srv.RepoURL("gitops"), backend: "7.0.0", gitToken: token, noSync: true}); err == nil {
		t.Error("--backend-tag without --frontend-tag accepted")
	}
}

// The engine gives every exec its OTLP endpoint and the calling function's span (TRACEPARENT): the
// GitOps program's stage spans land there, in the function's trace and under its span, as the
// module's own stages' spans do.
func TestTheProgramsSpansNestUnderTheFunction(t *testing.T) {
	srv := gitopsRemote(t)
	registry := pushedImages(t)
	col := otlpcollector.Start()
	defer col.Close()
	_, runs := startProgramSession(t, planted, func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		return daggerfake.Default(field, q)
	})
	const traceID, fn = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	runs.Engine = map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_EXPORTER_OTLP_TRACES_LIVE": "1", "TRACEPARENT": "00-" + traceID + "-" + fn + "-01"}
	token := useSession(t).Secret("env://GIT_TOKEN")
	if _, err := callDeploy(deployArgs{env: "dev", registry: registry, repo: srv.RepoURL("gitops"), backend: "7.0.0", frontend: "7.0.1", gitToken: token, noSync: true}); err != nil {
		t.Fatal(err)
	}
	byName := map[string]otlpcollector.Span{}
	ids := map[string]bool{}
	for _, s := range col.Spans() {
		byName[s.Name] = s
		ids[s.ID] = true
		if s.Trace != traceID {
			t.Errorf("span %s in trace %s, want the function's %s", s.Name, s.Trace, traceID)
		}
	}
	for _, name := range []string{"preflight", "verify", "bump", "git.commit", "git.push", "record"} {
		s, ok := byName[name]
		if !ok {
			t.Errorf("no %s span (got %v)", name, slices.Sorted(maps.Keys(byName)))
			continue
		}
		if p := s.Parent; p != fn && !ids[p] {
			t.Errorf("span %s hangs under %s, neither the function's span nor one of the run's", name, p)
		}
	}
	if s := byName["bump"]; s.Parent != fn {
		t.Errorf("the stage span bump is under %s, not under the function's span %s", s.Parent, fn)
	}
}

// deployArgs name the constructor's and deploy's flags for tests.
type deployArgs struct {
	source                                          *dagger.Directory
	env, registry, repo, version, backend, frontend string
	sourceCommit, sourceCommitTime, reportFormat    string
	pinDigest                                       bool
	gitToken                                        *dagger.Secret
	argocdServer                                    string
	dryRun, skipScan, noSync                        bool
	smtpHost                                        string
	smtpPort                                        int
	smtpTLS, mailFrom                               string
	mailTo                                          []string
	signingKey, signingPassword                     *dagger.Secret
	sourceRepo                                      string
	requireEvidence, sign                           bool
	exitZero                                        bool
	goEnv                                           []string
	canarySteps                                     string
	verifyCanaryURL                                 []string
}

// callDeploy configures the module with New, as `dagger call --repo … deploy …` does, and deploys.
func callDeploy(a deployArgs) (string, error) {
	m := New(a.source, a.registry, "", nil, a.repo, "main", "x-access-token", a.gitToken, a.argocdServer, nil, false, false, false, "", "",
		a.smtpHost, a.smtpPort, cmp.Or(a.smtpTLS, "starttls"), "", nil, a.mailFrom, a.mailTo, nil,
		a.signingKey, a.signingPassword, nil, false, nil, nil, nil, "", "", "", nil, "", "", "", "", a.sourceRepo, "", "", a.goEnv)
	return m.Deploy(context.Background(), a.env, a.version, a.backend, a.frontend, a.sourceCommit, a.sourceCommitTime, a.pinDigest,
		"", a.noSync, true, 60, a.dryRun, a.skipScan, nil, false, nil, "2xx", "", "", "30s", "2s", false, cmp.Or(a.canarySteps, "auto"), a.verifyCanaryURL,
		cmp.Or(a.reportFormat, "markdown"), a.requireEvidence, "HIGH", a.exitZero)
}

// gitopsModule is the module configured with a GitOps repository and its token.
func gitopsModule(repo string, token *dagger.Secret) *Wanderlust {
	return New(nil, "", "", nil, repo, "main", "x-access-token", token, "", nil, false, false, false, "", "", "", 0, "starttls", "", nil, "", nil, nil, nil, nil, nil, false, nil, nil, nil, "", "", "", nil, "", "", "", "", "", "", "", nil)
}

// A failed build is mailed with the run report, like a failed rollout; nothing is pushed.
func TestDeployMailsAFailedBuild(t *testing.T) {
	srv := gitopsRemote(t)
	mail, err := smtpserver.Start("", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer mail.Close()
	var session *daggerfake.Server
	session, _ = startProgramSession(t, planted, func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		if q = session.Expand(q); field == "sync" && strings.Contains(q, `"npm","test"`) && strings.Contains(q, `directory(path:"backend")`) {
			return nil, errors.New("process \"npm test\" did not complete successfully: exit code: 1\n  ● auth › rejects a bad token")
		}
		return daggerfake.Default(field, q)
	})
	c := useSession(t)
	before, _ := srv.Head("gitops", "main")
	host, port, _ := net.SplitHostPort(mail.Addr)
	p, _ := strconv.Atoi(port)
	_, err = callDeploy(deployArgs{source: c.Directory(), env: "dev", registry: "registry.invalid/wanderlust-app", repo: srv.RepoURL("gitops"),
		version: "2.0.0", gitToken: c.Secret("env://GIT_TOKEN"), skipScan: true, noSync: true,
		smtpHost: host, smtpPort: p, smtpTLS: "none", mailFrom: "ci@wanderlust.test", mailTo: []string{"team@wanderlust.test"}})
	if err == nil || !strings.Contains(err.Error(), "rejects a bad token") {
		t.Fatalf("err = %v", err)
	}
	msgs := mail.Messages()
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "FAILURE") || !strings.Contains(string(msgs[0].Data), "build") ||
		!strings.Contains(string(msgs[0].Data), "rejects a bad token") {
		t.Fatalf("%d mails: %q", len(msgs), msgs)
	}
	if after, _ := srv.Head("gitops", "main"); after != before {
		t.Error("pushed after a failed build")
	}
	if session.HasPublish() {
		t.Error("published after a failed build")
	}
	// With --exit-zero the failed run's report is the function's output (what CI keeps), and the
	// report's gate fails with the reason.
	out, err := callDeploy(deployArgs{source: c.Directory(), env: "dev", registry: "registry.invalid/wanderlust-app", repo: srv.RepoURL("gitops"),
		version: "2.0.0", gitToken: c.Secret("env://GIT_TOKEN"), skipScan: true, noSync: true, reportFormat: "json", exitZero: true})
	if err != nil {
		t.Fatalf("--exit-zero: %v", err)
	}
	r, err := readRunReport(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, gerr := r.Gate(); r.Result != "failed" || gerr == nil || !strings.Contains(gerr.Error(), "rejects a bad token") || !strings.Contains(r.Markdown, "| build | failed") {
		t.Errorf("result %q, gate %v, markdown:\n%s", r.Result, gerr, r.Markdown)
	}
}

// A dry run of a version that was never pushed builds, shows the change, pushes and mails nothing.
func TestDeployDryRunOfANewVersion(t *testing.T) {
	srv := gitopsRemote(t)
	mail, err := smtpserver.Start("", "", false)
	if err != nil {
		t.Fatal(err)
	}
	defer mail.Close()
	session, _ := startProgramSession(t, planted, func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		return daggerfake.Default(field, q)
	})
	c := useSession(t)
	before, _ := srv.Head("gitops", "main")
	host, port, _ := net.SplitHostPort(mail.Addr)
	p, _ := strconv.Atoi(port)
	out, err := callDeploy(deployArgs{source: c.Directory(), env: "prod", registry: "registry.invalid/wanderlust-app", repo: srv.RepoURL("gitops"),
		version: "9.9.9", gitToken: c.Secret("env://GIT_TOKEN"), dryRun: true, skipScan: true, noSync: true,
		smtpHost: host, smtpPort: p, smtpTLS: "none", mailFrom: "ci@wanderlust.test", mailTo: []string{"team@wanderlust.test"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dry run", "would push registry.invalid/wanderlust-app/wanderlust-backend:9.9.9", `+    newTag: "9.9.9"`, "| build | succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if after, _ := srv.Head("gitops", "main"); after != before {
		t.Error("a dry run pushed")
	}
	if len(mail.Messages()) != 0 || session.HasPublish() {
		t.Error("a dry run mailed or published")
	}
}

// Inputs are checked before the first side effect: a bad flag fails before any container is built.
func TestDeployChecksInputsBeforeBuilding(t *testing.T) {
	srv := gitopsRemote(t)
	for name, a := range map[string]deployArgs{
		"smtp tls":           {smtpHost: "127.0.0.1", smtpTLS: "bogus", mailFrom: "a@b.test", mailTo: []string{"c@d.test"}},
		"source commit time": {sourceCommitTime: "yesterday"},
		"version":            {version: "bad tag"},
		"registry":           {registry: "Not A Registry"},
		"environment":        {env: "Prod"},
		"repository":         {repo: "https://x:" + planted + "@example.invalid/r.git"},
		"argocd address":     {argocdServer: "https://argocd.example.invalid/"},
		"unreachable remote": {repo: "http://127.0.0.1:1/gitops.git"},
		"evidence, no key":   {requireEvidence: true},
		"go settings":        {goEnv: []string{"GOPROXY=https://ci:" + planted + "@goproxy.example.invalid"}},
		"evidence, bad key":  {requireEvidence: true, sign: true, sourceRepo: "https://github.com/x/y", sourceCommit: strings.Repeat("a", 40)},
		"canary steps":       {canarySteps: "sometimes"},
		"canary url":         {verifyCanaryURL: []string{"backend-canary:8080"}},
	} {
		t.Run(name, func(t *testing.T) {
			session, _ := startProgramSession(t, planted, func(field, q string) (any, error) {
				if field == "plaintext" {
					return planted, nil
				}
				return daggerfake.Default(field, q)
			})
			c := useSession(t)
			a.source, a.gitToken = c.Directory(), c.Secret("env://GIT_TOKEN")
			if a.sign {
				a.signingKey = c.Secret("env://SIGNING_KEY") // the stand-in answers the planted token: not a key
			}
			a.env, a.registry, a.repo, a.version = cmp.Or(a.env, "dev"), cmp.Or(a.registry, "registry.invalid/w"), cmp.Or(a.repo, srv.RepoURL("gitops")), cmp.Or(a.version, "1.2.3")
			_, err := callDeploy(a)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), planted) {
				t.Error("the token is in the error")
			}
			if ran := containerStages(session); len(ran) > 0 {
				t.Errorf("built before the check failed (%v): %q", err, ran)
			}
			// What the module can judge alone is refused before the GitOps program is even built.
			if moduleChecks[name] && strings.Contains(session.All(), runner.Bin) {
				t.Errorf("the GitOps program was built or run for a flag the module checks itself (%v)", err)
			}
		})
	}
}

// moduleChecks are the inputs the module refuses itself, without the GitOps program.
var moduleChecks = map[string]bool{"smtp tls": true, "source commit time": true, "environment": true, "argocd address": true,
	"evidence, no key": true, "evidence, bad key": true, "go settings": true, "canary steps": true, "canary url": true}

// containerStages are the execs of a session other than the GitOps program's build and runs: the
// container stages (tests, builds, scans).
func containerStages(s *daggerfake.Server) []string {
	var out []string
	for _, c := range daggerfake.Calls(s.All(), "withExec") {
		if a := execArgs(c); len(a) > 0 && a[0] != runner.Bin && !(a[0] == "go" && slices.Contains(a, runner.Bin)) {
			out = append(out, strings.Join(a, " "))
		}
	}
	return out
}

// useSession points the module's dag at the stand-in session the test started.
func useSession(t *testing.T) *dagger.Client {
	c, saved := dagger.Connect(), dag
	dag = c
	t.Cleanup(func() { dag = saved })
	return c
}

// "Does my mail setup work?": notify sends a test message with the constructor's SMTP settings, and
// a run report given as JSON.
func TestNotifySendsATestMessageAndAReport(t *testing.T) {
	mail, err := smtpserver.Start("ci", planted, false)
	if err != nil {
		t.Fatal(err)
	}
	defer mail.Close()
	session := daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		switch field {
		case "plaintext":
			return planted, nil
		case "contents":
			return `{"title":"Wanderlust deploy","environment":"dev","result":"failed","stages":[{"name":"sync","status":"failed","error":"Degraded"}]}`, nil
		}
		return daggerfake.Default(field, q)
	}))
	c := dagger.Connect()
	host, port, _ := net.SplitHostPort(mail.Addr)
	p, _ := strconv.Atoi(port)
	m := New(nil, "", "", nil, "", "main", "x-access-token", nil, "", nil, false, false, false, "", "",
		host, p, "none", "ci", c.Secret("env://SMTP_PASSWORD"), "ci@wanderlust.test", []string{"team@wanderlust.test"}, nil, nil, nil, nil, false, nil, nil, nil, "", "", "", nil, "", "", "", "", "", "", "", nil)
	// go-smtp refuses AUTH over a plain connection: the settings are wrong, and notify says so.
	if _, err := m.Notify(context.Background(), nil); err == nil || strings.Contains(err.Error(), planted) {
		t.Fatalf("plain-text auth: err = %v", err)
	}
	m.SMTPTLS, m.SMTPUsername, m.SMTPPassword = "none", "", nil
	noAuth, _ := smtpserver.Start("", "", false)
	defer noAuth.Close()
	_, port, _ = net.SplitHostPort(noAuth.Addr)
	m.SMTPPort, _ = strconv.Atoi(port)
	out, err := m.Notify(context.Background(), nil)
	if err != nil || !strings.Contains(out, "test message") {
		t.Fatalf("%q, %v", out, err)
	}
	if _, err := m.Notify(context.Background(), c.File("report.json", "{}")); err != nil {
		t.Fatal(err)
	}
	msgs := noAuth.Messages()
	if len(msgs) != 2 || !strings.Contains(string(msgs[0].Data), "the SMTP settings work") || !strings.Contains(string(msgs[1].Data), "FAILURE") {
		t.Errorf("%d mails: %q", len(msgs), msgs)
	}
	if strings.Contains(session.All(), planted) {
		t.Error("the SMTP password is in an engine query")
	}
}

// metrics reads the GitOps repository through the constructor's --repo and returns the report, the
// charts and the files to export (here on a deploy made by the module itself).
func TestMetricsFunction(t *testing.T) {
	srv := gitopsRemote(t)
	registry := pushedImages(t)
	session, _ := startProgramSession(t, planted, func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		return daggerfake.Default(field, q)
	})
	c := useSession(t)
	token := c.Secret("env://GIT_TOKEN")
	if _, err := callDeploy(deployArgs{env: "staging", registry: registry, repo: srv.RepoURL("gitops"), backend: "7.0.0", frontend: "7.0.1", gitToken: token, noSync: true}); err != nil {
		t.Fatal(err)
	}
	m, err := gitopsModule(srv.RepoURL("gitops"), token).Metrics(context.Background(), "staging", "1d", "", "markdown")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Report, "### staging") || !strings.Contains(m.Report, "(1 deployments)") {
		t.Errorf("report:\n%s", m.Report)
	}
	if _, err := m.Files.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	all := session.Expand(session.All())
	if !daggerfake.HasCall(all, "withNewFile", `path:"staging.svg"`) || !daggerfake.HasCall(all, "withNewFile", `path:"metrics.md"`) {
		t.Errorf("files: %s", all)
	}
	if _, err := gitopsModule(srv.RepoURL("gitops"), token).Metrics(context.Background(), "", "yesterday", "", "markdown"); err == nil {
		t.Error("--since yesterday accepted")
	}
}

// pushedImages starts an OCI registry holding wanderlust-backend:7.0.0 and wanderlust-frontend:7.0.1
// and returns its repository prefix.
func pushedImages(t *testing.T) string {
	t.Helper()
	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	registry := strings.TrimPrefix(reg.URL, "http://") + "/wanderlust-app"
	for _, img := range []string{"wanderlust-backend:7.0.0", "wanderlust-frontend:7.0.1"} {
		i, _ := random.Image(128, 1)
		r, _ := name.ParseReference(registry + "/" + img)
		if err := remote.Write(r, i); err != nil {
			t.Fatal(err)
		}
	}
	return registry
}

// CI exports a scan's reports and gates on the same scan: scan-gate decides from verdict.json.
func TestScanGateDecidesFromTheExportedVerdict(t *testing.T) {
	pass, _ := json.Marshal(findings.Verdict{Pass: true})
	fail, _ := json.Marshal(findings.Verdict{Blocking: map[string][]findings.Finding{"trivy": {{Tool: "trivy", ID: "DS-0002", Kind: "misconfiguration", Severity: findings.High, Title: "no USER", File: "frontend/Dockerfile"}}}})
	if out, err := scanGate(pass); err != nil || out != "scan gate passed" {
		t.Errorf("passing verdict: %q %v", out, err)
	}
	if _, err := scanGate(fail); err == nil || !strings.Contains(err.Error(), "DS-0002") {
		t.Errorf("failing verdict: %v", err)
	}
	if _, err := scanGate([]byte("not json")); err == nil || !strings.Contains(err.Error(), "not a scan verdict") {
		t.Errorf("garbage: %v", err)
	}
	if m := New(nil, "ghcr.io/Acme-Corp", "", nil, "", "main", "", nil, "", nil, false, false, false, "", "", "", 0, "starttls", "", nil, "", nil, nil, nil, nil, nil, false, nil, nil, nil, "", "", "", nil, "", "", "", "", "", "", "", nil); m.Registry != "ghcr.io/acme-corp" {
		t.Errorf("registry %q: OCI repository names are lower case", m.Registry)
	}
}

// The report's gate fails exactly the runs that deploy itself fails.
func TestRunReportGate(t *testing.T) {
	for result, fails := range map[string]bool{"succeeded": false, "superseded": false, "already deployed": false, "dry run": false, "failed": true, "failed (not ours)": true} {
		r, err := readRunReport(`{"title":"Wanderlust deploy","result":"` + result + `","reason":"why"}`)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Gate(); (err != nil) != fails {
			t.Errorf("%s: gate error %v", result, err)
		}
	}
	if _, err := readRunReport(`{"findings":[]}`); err == nil {
		t.Error("a file that is not a run report was read as one")
	}
}

// promote-canary and abort-canary check what they can alone before the GitOps program runs, then
// hand it one canary request (the environment, abort or not, the checks at each pause), the
// credentials as secret variables only; the program's refusal (here: Argo CD unreachable) fails the
// call, and nothing is pushed.
func TestPromoteAndAbortCanaryRunTheProgramsCanaryCommand(t *testing.T) {
	srv := gitopsRemote(t)
	head, _ := srv.Head("gitops", "main")
	_, runs := startProgramSession(t, planted, func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		return daggerfake.Default(field, q)
	})
	c := useSession(t)
	m := New(nil, "", "", nil, srv.RepoURL("gitops"), "main", "x-access-token", c.Secret("env://GIT_TOKEN"), "127.0.0.1:1", c.Secret("env://ARGOCD_TOKEN"),
		true, false, false, "", "", "", 0, "starttls", "", nil, "", nil, nil, nil, nil, nil, false, nil, nil, nil, "", "", "", nil, "", "", "", "", "", "", "", nil)
	ctx := context.Background()
	if _, err := m.PromoteCanary(ctx, "Prod", "", 0, nil, nil, "2xx", "30s", "2s", "markdown", false); err == nil {
		t.Error("an invalid environment was accepted")
	}
	if _, err := m.PromoteCanary(ctx, "prod", "", 0, nil, []string{"not-a-url"}, "2xx", "30s", "2s", "markdown", false); err == nil {
		t.Error("an invalid --verify-canary-url was accepted")
	}
	if len(runs.Runs()) != 0 {
		t.Fatalf("the program ran for flags the module checks itself: %d runs", len(runs.Runs()))
	}
	_, perr := m.PromoteCanary(ctx, "prod", "", 0, []string{"https://wanderlust.example.invalid/api/posts"}, []string{"http://backend-canary.example.invalid/api/posts"},
		"2xx", "10s", "1s", "markdown", false)
	_, aerr := m.AbortCanary(ctx, "prod", "wanderlust-production", 0, "markdown")
	if perr == nil || aerr == nil || !strings.Contains(perr.Error(), "cannot reach 127.0.0.1:1") {
		t.Fatalf("promote-canary %v, abort-canary %v: want Argo CD unreachable", perr, aerr)
	}
	var got []gitops.ContinueCanary
	for _, x := range runs.Runs() {
		if len(x.Args) < 2 || x.Args[1] != gitops.CmdCanary {
			t.Fatalf("program run %q, want the canary command", x.Args)
		}
		var q gitops.ContinueCanary
		x.request(t, &q)
		got = append(got, q)
		if !slices.Contains(x.Secrets, gitops.EnvArgoCDToken) || strings.Contains(strings.Join(x.Args, " ")+strings.Join(x.Env, " "), planted) {
			t.Errorf("the tokens are not secret variables of the program: %q %q", x.Secrets, x.Args)
		}
	}
	if len(got) != 2 || got[0].Env != "prod" || got[0].Abort || got[0].VerifyCanaryURLs[0] != "http://backend-canary.example.invalid/api/posts" ||
		got[0].Verify.For != "10s" || !got[1].Abort || got[1].App != "wanderlust-production" {
		t.Errorf("requests %+v", got)
	}
	if after, _ := srv.Head("gitops", "main"); after != head {
		t.Error("a refused promote-canary or abort-canary pushed")
	}
}
