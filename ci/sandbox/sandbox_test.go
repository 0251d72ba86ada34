package sandbox_test

// The sandbox's services, run on the host exactly as their Dagger services run them: the command
// the GitOps program (cmd/gitops) built and started once per service (git remote, registry, mail catcher, Argo CD with
// the applications of kubernetes/argocd), then its runner deploys given images, promotes them, and
// deploys a never-ready image, which is rolled back. The Argo CD stack uses the harness's binaries.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"wanderlust.dev/pipeline/ci/sandbox"
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

// service starts one subcommand in the background until the test ends.
func service(t testing.TB, bin string, logs *bytes.Buffer, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--host", "127.0.0.1")...)
	cmd.Env = append(os.Environ(), "SANDBOX_GIT_PASSWORD="+gitPassword, "SANDBOX_ARGOCD_PASSWORD="+argoPassword)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
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
	Subject string   `json:"subject"`
	To      []string `json:"to"`
}

func mails(t testing.TB, url string) []mailEntry {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []mailEntry
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// world is the sandbox's services started from the GitOps program (cmd/gitops) on the host.
type world struct {
	bin, repo, mailURL string
	argoURL            string
	ready              time.Duration
	run                func(args ...string) (string, error)
}

// start builds the GitOps program (cmd/gitops) and starts its four services, as their Dagger services do.
func start(t testing.TB) *world {
	t.Helper()
	bins := argocdharness.BinDir()
	for _, b := range sandbox.Binaries {
		if _, err := os.Stat(filepath.Join(bins, b)); err != nil {
			if os.Getenv("WANDERLUST_E2E") != "" {
				t.Fatalf("%s missing in %s: run hack/e2e/build.sh", b, bins)
			}
			t.Skipf("%s missing in %s (hack/e2e/build.sh builds it)", b, bins)
		}
	}
	manifests, err := argocdharness.ArgoManifests()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{bin: build(t)}
	dir := t.TempDir()
	logs := &bytes.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service logs:\n%s", logs.String())
		}
	})
	gitPort, regPort, smtpPort, mailPort, argoPort, healthPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	begin := time.Now()
	service(t, w.bin, logs, "git", "--port", gitPort, "--root", filepath.Join(dir, "git"), "--kubernetes", "../../kubernetes")
	service(t, w.bin, logs, "registry", "--port", regPort)
	service(t, w.bin, logs, "mail", "--smtp-port", smtpPort, "--http-port", mailPort)
	w.repo = "http://127.0.0.1:" + gitPort + "/" + sandbox.RepoName + ".git"
	service(t, w.bin, logs, "argocd", "--bin", bins, "--manifests", manifests, "--dir", filepath.Join(dir, "argocd"),
		"--apps", "../../kubernetes/argocd", "--repo-url", w.repo, "--port", argoPort, "--health-port", healthPort)
	waitHTTP(t, "http://127.0.0.1:"+healthPort+"/", 3*time.Minute)
	w.ready = time.Since(begin)
	w.mailURL = "http://127.0.0.1:" + mailPort + "/"
	w.argoURL = "http://127.0.0.1:" + argoPort
	w.run = func(args ...string) (string, error) {
		cmd := exec.Command(w.bin, append(args, "--registry", "127.0.0.1:"+regPort, "--repo", w.repo, "--argocd", "127.0.0.1:"+argoPort,
			"--smtp", "127.0.0.1:"+smtpPort, "--mail-listing", "127.0.0.1:"+mailPort, "--timeout", "4m")...)
		cmd.Env = append(os.Environ(), "SANDBOX_GIT_PASSWORD="+gitPassword, "SANDBOX_ARGOCD_PASSWORD="+argoPassword)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(&errb, logs)
		err := cmd.Run()
		return out.String() + errb.String(), err
	}
	return w
}

func TestSandboxDeploysPromotesAndRollsBack(t *testing.T) {
	w := start(t)
	t.Logf("sandbox services ready in %s", w.ready.Round(time.Millisecond))
	runner := w.run
	// Argo CD says which version it is (hack/e2e/build.sh stamps it), not v99.99.99.
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
	for _, want := range []string{"| build | succeeded", "| publish | succeeded", "| bump | succeeded", "| sync | succeeded", "| notify | succeeded", "Mail catcher: 1 message(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the deploy's output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("deploy to dev: %s", time.Since(t0).Round(time.Millisecond))
	m := mails(t, w.mailURL)
	if len(m) != 1 || !strings.Contains(m[0].Subject, "deployed to dev - 'SUCCESS'") {
		t.Fatalf("mail: %+v", m)
	}

	// Promote dev → staging (no evidence in the sandbox: the gate is skipped, and the report says so).
	out, err = runner("sandbox-promote", "--from", "dev", "--to", "staging")
	if err != nil || !strings.Contains(out, "Healthy") || !strings.Contains(out, "not signed") {
		t.Fatalf("promote: %v\n%s", err, out)
	}

	// A never-ready rollout fails and is rolled back; the failure is mailed.
	out, err = runner("sandbox-deploy", "--env", "dev", "--version", sandbox.NeverReady, "--image", "backend="+backend, "--image", "frontend="+frontend)
	if err == nil || !strings.Contains(strings.ToLower(out), "rolled back") {
		t.Fatalf("never-ready deploy: %v\n%s", err, out)
	}
	m = mails(t, w.mailURL)
	if last := m[len(m)-1]; !strings.Contains(last.Subject, "FAILURE") {
		t.Errorf("last mail: %+v", last)
	}
	for _, secret := range []string{gitPassword, argoPassword} {
		if strings.Contains(out, secret) {
			t.Error("a sandbox password is in the runner's output")
		}
	}
}

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
	fmt.Printf("BENCH P10 services_ready_ms=%d deploy_ms=%d goal_ready_ms=15000 goal_deploy_ms=60000 where=host\n", w.ready.Milliseconds(), d.Milliseconds())
	b.ReportMetric(float64(d.Milliseconds()), "deploy_ms")
}
