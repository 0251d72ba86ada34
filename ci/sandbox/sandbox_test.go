package sandbox_test

// The sandbox's services, run on the host as their Dagger services run them: the GitOps program
// (cmd/gitops, built once) serves the git remote and bootstraps the cluster; the cluster is the
// harness's Kubernetes and kwok (the versions of kwok's cluster image, with the same stages) behind
// an unauthenticated proxy, as the cluster image serves it; Argo CD's three components are the
// harness's argocd v2.14.21 with the sandbox's arguments and environment (sandbox/layout); the mail
// is a real Mailpit and the registry go-containerregistry's. Then the runner deploys given images,
// promotes them, and deploys a never-ready image, which is rolled back.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/sandbox"
	"wanderlust.dev/pipeline/ci/sandbox/layout"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/testsupport/argocdharness"
)

const (
	gitPassword  = "sandbox-git-pass-7f3a"
	argoPassword = "sandbox-argo-pass-91bc"
)

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// build compiles the GitOps program (cmd/gitops, a Go module of its own), whose subcommands are the
// sandbox's services and runner.
func build(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "wanderlust-gitops")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = "../cmd/gitops"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gitops: %v\n%s", err, b)
	}
	return out
}

// service starts one of the program's subcommands in the background until the test ends.
func service(t testing.TB, bin string, logs io.Writer, args ...string) *proc {
	t.Helper()
	return process(t, logs, []string{"SANDBOX_GIT_PASSWORD=" + gitPassword, "SANDBOX_ARGOCD_PASSWORD=" + argoPassword}, bin, append(args, "--host", "127.0.0.1")...)
}

// proc is a program the test started: what it printed, and whether it has ended.
type proc struct {
	out  syncBuffer
	done chan struct{}
	err  error // once done is closed
}

// exited says how the program ended, or "" while it runs.
func (p *proc) exited() string {
	select {
	case <-p.done:
		return fmt.Sprintf("exited (%v): %s", p.err, strings.TrimSpace(p.out.String()))
	default:
		return ""
	}
}

// process starts a program in the background until the test ends; its output goes to logs too.
func process(t testing.TB, logs io.Writer, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = io.MultiWriter(logs, &p.out)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// startGit starts the program's git service and waits until it serves the seeded repository. The
// port is free when chosen but bound only after the service has seeded the repository, so another
// listener may take it meanwhile: then the service ends ("address already in use") and a new port
// is tried (ports gives each attempt's). Without this wait, Argo CD's repo-server could be sent to
// whatever holds the port.
func startGit(t testing.TB, bin string, logs io.Writer, root string, ports func() string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := ports()
		p := service(t, bin, logs, "git", "--port", port, "--root", root, "--kubernetes", "../../kubernetes")
		repo := "http://127.0.0.1:" + port + "/" + sandbox.RepoName + ".git"
		err := waitGit(repo, p, time.Minute)
		if err == nil {
			return repo
		}
		if attempt < 3 && strings.Contains(p.exited(), "address already in use") {
			continue
		}
		t.Fatalf("the sandbox's git service on port %s: %v", port, err)
	}
}

// waitGit waits until the git service p answers an authenticated ref advertisement of repo.
func waitGit(repo string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if e := p.exited(); e != "" {
			return fmt.Errorf("%s", e)
		}
		last := probeGit(repo)
		if last == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after %s: %s", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probeGit asks the git remote for its refs as Argo CD's repo-server does; "" when it answers
// them, else what it answered instead (a listener that never answers, too, within 5 s).
func probeGit(repo string) string {
	req, _ := http.NewRequest(http.MethodGet, repo+"/info/refs?service=git-upload-pack", nil)
	req.SetBasicAuth(sandbox.GitUser, gitPassword)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/x-git-upload-pack-advertisement" {
		return fmt.Sprintf("%s, Content-Type %q", resp.Status, ct)
	}
	return ""
}

func waitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s", url, timeout)
}

// imageTar writes a random image's tarball.
func imageTar(t testing.TB, dir, n string) string {
	t.Helper()
	img, _ := random.Image(256, 1)
	p := filepath.Join(dir, n+".tar")
	tag, _ := name.NewTag("wanderlust-" + n + ":built")
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	return p
}

type mailEntry struct {
	Subject string
}

// mails lists what Mailpit holds, from its API (api: host:port).
func mails(t testing.TB, api string) []mailEntry {
	t.Helper()
	resp, err := http.Get("http://" + api + "/api/v1/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Messages []mailEntry }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Messages
}

// kubectlProxy serves the API server at st without authentication, as kwok's cluster image does
// with `kubectl proxy`.
func kubectlProxy(t testing.TB, st *sandbox.Stack) string {
	u, _ := url.Parse(st.KubeAPI)
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	token := st.AdminToken
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// world is the sandbox's services started on the host.
type world struct {
	bin, repo, mailAPI string
	argoURL            string
	registry, argo     string        // host:port
	ready              time.Duration // the cluster up → Argo CD serving the applications
	bootstrap          time.Duration // of which the bootstrap
	run                func(args ...string) (string, error)
}

// start builds the GitOps program (cmd/gitops) and starts the sandbox's services, as their Dagger
// services do (sandbox/recipe).
func start(t testing.TB) *world {
	t.Helper()
	bins := argocdharness.BinDir()
	for _, b := range append(sandbox.Binaries, "mailpit") {
		if _, err := os.Stat(filepath.Join(bins, b)); err != nil {
			if os.Getenv("WANDERLUST_E2E") != "" {
				t.Fatalf("%s missing in %s: run hack/e2e/build.sh", b, bins)
			}
			t.Skipf("%s missing in %s (hack/e2e/build.sh builds it)", b, bins)
		}
	}
	w := &world{bin: build(t)}
	dir := t.TempDir()
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service logs:\n%s", logs.String())
		}
	})
	// The cluster (kwok's cluster image), behind its unauthenticated proxy.
	st, err := sandbox.Start(sandbox.Config{Bin: bins, Dir: filepath.Join(dir, "kube"), KubernetesOnly: true, AdminPassword: argoPassword})
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	kube := kubectlProxy(t, st)
	// Registered after the proxy's, so run before it: Argo CD's watches go through the proxy.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the stack's logs:\n%s", st.Logs(3000))
		}
		st.Stop()
	})

	w.repo = startGit(t, w.bin, logs, filepath.Join(dir, "git"), func() string { return freePort(t) })
	smtpPort, mailPort, healthPort := freePort(t), freePort(t), freePort(t)
	reg := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	process(t, logs, nil, filepath.Join(bins, "mailpit"), "--smtp", "127.0.0.1:"+smtpPort, "--listen", "127.0.0.1:"+mailPort)

	// The bootstrap, then Argo CD's components (as Dagger starts them: after their bindings).
	service(t, w.bin, logs, "sandbox-bootstrap", "--kube", kube, "--apps", "../../kubernetes/argocd", "--repo-url", w.repo, "--health-port", healthPort)
	waitHTTP(t, "http://127.0.0.1:"+healthPort+"/", 3*time.Minute)
	w.bootstrap = time.Since(begin)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(layout.Kubeconfig(kube, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	// Argo Rollouts' controller (its CRDs are the bootstrap's), then Argo CD's components.
	if err := st.StartRollouts(kubeconfig); err != nil {
		t.Fatal(err)
	}
	if err := st.StartArgoCD(kubeconfig); err != nil {
		t.Fatal(err)
	}
	w.argo = st.Server
	w.argoURL = "http://" + w.argo
	waitSynced(t, w.argoURL, w.repo, 3*time.Minute)
	w.ready = time.Since(begin)
	w.mailAPI = "127.0.0.1:" + mailPort
	regHost := strings.TrimPrefix(reg.URL, "http://")
	w.registry = regHost
	w.run = func(args ...string) (string, error) {
		cmd := exec.Command(w.bin, append(args, "--registry", regHost, "--repo", w.repo, "--argocd", w.argo,
			"--smtp", "127.0.0.1:"+smtpPort, "--mail-api", w.mailAPI, "--timeout", "4m")...)
		cmd.Env = append(os.Environ(), "SANDBOX_GIT_PASSWORD="+gitPassword, "SANDBOX_ARGOCD_PASSWORD="+argoPassword)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(&errb, logs)
		err := cmd.Run()
		return out.String() + errb.String(), err
	}
	return w
}

// A port taken by another listener between its choice and the git service's bind does not leave
// the sandbox's applications pointed at that listener: the service is started again elsewhere, and
// the repository it serves is the one returned.
func TestGitServiceMovesOffAPortTakenMeanwhile(t *testing.T) {
	if os.Getenv("WANDERLUST_E2E") == "" {
		t.Skip("WANDERLUST_E2E=1 builds the GitOps program")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := fmt.Sprint(taken.Addr().(*net.TCPAddr).Port)
	var tried []string
	repo := startGit(t, build(t), io.Discard, t.TempDir(), func() string {
		p := takenPort
		if len(tried) > 0 {
			p = freePort(t)
		}
		tried = append(tried, p)
		return p
	})
	if len(tried) != 2 || strings.Contains(repo, ":"+takenPort+"/") {
		t.Fatalf("ports tried %v, repository %s: want the taken port, then another", tried, repo)
	}
	if got := probeGit(repo); got != "" {
		t.Fatalf("%s does not serve its refs: %s", repo, got)
	}
}

// waitSynced waits until Argo CD shows every application Synced and Healthy at the seed commit;
// if they are not, it says what the git remote (repo) answers.
func waitSynced(t testing.TB, server, repo string, timeout time.Duration) {
	t.Helper()
	token, err := sandbox.Login(context.Background(), strings.TrimPrefix(server, "http://"), argoPassword)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, server+"/api/v1/applications", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var list struct {
				Items []struct {
					Metadata struct{ Name string }
					Status   struct {
						Sync   struct{ Status string }
						Health struct{ Status string }
					}
				}
			}
			_ = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			ok := len(list.Items) > 0
			last = ""
			for _, a := range list.Items {
				last += fmt.Sprintf("%s %s/%s ", a.Metadata.Name, a.Status.Sync.Status, a.Status.Health.Status)
				ok = ok && a.Status.Sync.Status == "Synced" && a.Status.Health.Status == "Healthy"
			}
			if ok {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	git := probeGit(repo)
	if git == "" {
		git = "answers its refs"
	}
	t.Fatalf("the applications are not Synced and Healthy after %s: %s; the git remote %s: %s", timeout, last, repo, git)
}

// syncBuffer is a bytes.Buffer several processes write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestSandboxDeploysPromotesAndRollsBack(t *testing.T) {
	w := start(t)
	t.Logf("sandbox: bootstrap %s, applications Synced and Healthy %s after the cluster", w.bootstrap.Round(time.Millisecond), w.ready.Round(time.Millisecond))
	runner := w.run
	// Argo CD says which version it is (its image's, as hack/e2e/build.sh stamps it), not v99.99.99.
	resp, err := http.Get(w.argoURL + "/api/version")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version string }
	_ = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if !strings.HasPrefix(v.Version, "v2.14.21") {
		t.Errorf("Argo CD reports version %q, want v2.14.21", v.Version)
	}
	imgs := t.TempDir()
	backend, frontend := imageTar(t, imgs, "backend"), imageTar(t, imgs, "frontend")

	// Deploy: Healthy, and the report mailed. The report goes on from the module's (its build stage):
	// one report for the whole run, publish included; the mail catcher is asked what it holds.
	t0 := time.Now()
	soFar := report.New("Wanderlust deploy (sandbox)", "dev")
	_, end := soFar.Start(context.Background(), "build")
	end(map[string]string{"tests": "ran"}, nil)
	out, err := runner("sandbox-deploy", "--env", "dev", "--version", "2.0.0", "--image", "backend="+backend, "--image", "frontend="+frontend,
		"--report", string(soFar.JSON()))
	if err != nil || !strings.Contains(out, "Healthy") {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	for _, want := range []string{"| build | succeeded", "| publish | succeeded", "| bump | succeeded", "| sync | succeeded", "| notify | succeeded", "Mailpit: 1 message(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the deploy's output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("deploy to dev: %s", time.Since(t0).Round(time.Millisecond))
	m := mails(t, w.mailAPI)
	if len(m) != 1 || !strings.Contains(m[0].Subject, "deployed to dev - 'SUCCESS'") {
		t.Fatalf("mail: %+v", m)
	}

	// Promote dev → staging (no evidence in the sandbox: the gate is skipped, and the report says so).
	out, err = runner("sandbox-promote", "--from", "dev", "--to", "staging")
	if err != nil || !strings.Contains(out, "Healthy") || !strings.Contains(out, "not signed") {
		t.Fatalf("promote: %v\n%s", err, out)
	}

	// prod rolls out by canary (Argo Rollouts, the sandbox's controller): the report lists each step.
	out, err = runner("sandbox-deploy", "--env", "prod", "--version", "2.0.0", "--image", "backend="+backend, "--image", "frontend="+frontend)
	if err != nil || !strings.Contains(out, "Healthy") {
		t.Fatalf("deploy to prod: %v\n%s", err, out)
	}
	for _, want := range []string{"| step 1 | succeeded", "| step 2 | succeeded", "backend step 1/4 at 20 %", "frontend step 3/4 at 50 %"} {
		if !strings.Contains(out, want) {
			t.Errorf("the prod deploy's report lacks %q:\n%s", want, out)
		}
	}

	// A never-ready rollout fails and is rolled back; the failure is mailed.
	out, err = runner("sandbox-deploy", "--env", "dev", "--version", sandbox.NeverReady, "--image", "backend="+backend, "--image", "frontend="+frontend)
	if err == nil || !strings.Contains(strings.ToLower(out), "rolled back") {
		t.Fatalf("never-ready deploy: %v\n%s", err, out)
	}
	m = mails(t, w.mailAPI)
	// Mailpit lists the newest first.
	if last := m[0]; !strings.Contains(last.Subject, "FAILURE") {
		t.Errorf("last mail: %+v", last)
	}
	for _, secret := range []string{gitPassword, argoPassword} {
		if strings.Contains(out, secret) {
			t.Error("a sandbox password is in the runner's output")
		}
	}

	productionDeploy(t, w, backend)
}

// productionDeploy runs the production deploy (the program's deploy request, what `dagger call …
// deploy` sends) against the sandbox as `up` forwards it: it pushes through another URL than the one
// the applications name (here localhost for 127.0.0.1; with up, localhost:3000 for http://git:8080),
// so preflight refuses it, naming --argocd-repo-url, before any push; with that flag it deploys.
func productionDeploy(t *testing.T, w *world, tarball string) {
	img, err := tarballImage(tarball)
	if err != nil {
		t.Fatal(err)
	}
	ref := w.registry + "/wanderlust-app/wanderlust-backend:2.1.0"
	tag, _ := name.NewTag(ref, name.Insecure)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	token, err := sandbox.Login(context.Background(), w.argo, argoPassword)
	if err != nil {
		t.Fatal(err)
	}
	deployOnce := func(argoRepo string) (*gitops.Result, error) {
		q := gitops.Deploy{Config: gitops.Config{Repo: strings.Replace(w.repo, "127.0.0.1", "localhost", 1), Branch: sandbox.Branch, GitUser: sandbox.GitUser,
			ArgoCD: gitops.ArgoCD{Server: w.argo, PlainText: true, RepoURL: argoRepo}},
			Phase: gitops.PhaseRun, Env: "dev", Images: []string{ref}, PinDigest: true, Rollback: true, TimeoutSeconds: 240, RunID: fmt.Sprintf("production-%d", len(argoRepo))}
		args, err := gitops.Args(gitops.CmdDeploy, q)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(w.bin, args[1:]...)
		cmd.Env = append(os.Environ(), gitops.EnvGitToken+"="+gitPassword, gitops.EnvArgoCDToken+"="+token)
		var out bytes.Buffer
		cmd.Stdout = &out
		runErr := cmd.Run()
		res, err := gitops.ReadResult(out.String())
		if err != nil {
			return nil, fmt.Errorf("%v: %w", runErr, err)
		}
		return res, runErr
	}
	before := head(t, w)
	res, err := deployOnce("")
	if err == nil || res.Report == nil || !strings.Contains(res.Report.Markdown(), "--argocd-repo-url") {
		t.Fatalf("a deploy through another URL than the applications name passed preflight: %v %+v", err, res)
	}
	if after := head(t, w); after != before {
		t.Fatalf("a refused deploy pushed: %s → %s", before, after)
	}
	res, err = deployOnce(w.repo)
	if err != nil || res.Report == nil || !strings.Contains(res.Report.Markdown(), "Healthy") {
		t.Fatalf("the production deploy with --argocd-repo-url: %v %+v", err, res)
	}
}

// head is the GitOps branch's commit on the sandbox's remote.
func head(t *testing.T, w *world) string {
	t.Helper()
	out, err := exec.Command("git", "ls-remote", strings.Replace(w.repo, "http://", "http://"+sandbox.GitUser+":"+gitPassword+"@", 1), sandbox.Branch).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out) + " none")[0]
}

func tarballImage(p string) (v1.Image, error) { return tarball.ImageFromPath(p, nil) }

// P10: the sandbox on the host, warm (binaries built): services ready, and a deploy of two images
// until Healthy with the report mailed. Inside Dagger the same programs run in containers.
func BenchmarkSandbox(b *testing.B) {
	w := start(b)
	imgs := b.TempDir()
	backend, frontend := imageTar(b, imgs, "backend"), imageTar(b, imgs, "frontend")
	t0 := time.Now()
	if out, err := w.run("sandbox-deploy", "--env", "dev", "--version", "2.0.0", "--image", "backend="+backend, "--image", "frontend="+frontend); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	d := time.Since(t0)
	fmt.Printf("BENCH P10 bootstrap_ms=%d services_ready_ms=%d deploy_ms=%d goal_ready_ms=15000 goal_deploy_ms=60000 where=host\n",
		w.bootstrap.Milliseconds(), w.ready.Milliseconds(), d.Milliseconds())
	b.ReportMetric(float64(d.Milliseconds()), "deploy_ms")
}
