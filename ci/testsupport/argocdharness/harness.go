// Package argocdharness runs a real Argo CD on loopback for tests — the sandbox's stack
// (ci/sandbox: etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from their Go
// modules, kwok to make pods Ready without a kubelet, redis, and Argo CD's repo-server,
// application-controller and API server) — and tears it down when the test ends.
//
// The binaries are built once per version into a cache outside the repository by hack/e2e/build.sh
// (run by `make test`); BinDir says where.
package argocdharness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/sandbox"
	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
)

// Versions of the harness's components; the binaries' cache directory is named after them.
const Versions = "k8s-v1.34.8_etcd-v3.6.10_argocd-v2.14.21_kwok-v0.8.0"

// BinDir is where hack/e2e/build.sh puts the binaries: $WANDERLUST_E2E_BIN, else
// $XDG_CACHE_HOME (or ~/.cache)/wanderlust/e2e/<Versions>/bin.
func BinDir() string {
	if d := os.Getenv("WANDERLUST_E2E_BIN"); d != "" {
		return d
	}
	return fixtures.ToolCache("e2e", Versions, "bin")
}

// NeverReady marks an image whose pods kwok never makes Ready (see sandbox.NeverReady).
const NeverReady = sandbox.NeverReady

// AppSpec describes an Application (see sandbox.AppSpec).
type AppSpec = sandbox.AppSpec

// Harness is a running Kubernetes + Argo CD for a test.
type Harness struct {
	*sandbox.Stack
	t testing.TB
}

// Start brings the whole stack up, or fails the test. Without the binaries it fails when
// WANDERLUST_E2E is set (as `make test` sets it) and skips otherwise.
func Start(t testing.TB) *Harness {
	t.Helper()
	bin := BinDir()
	for _, b := range sandbox.Binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			msg := fmt.Sprintf("Argo CD harness binaries missing in %s (%s): run hack/e2e/build.sh", bin, b)
			if os.Getenv("WANDERLUST_E2E") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (apt-get install redis-server)")
	}
	dir, err := os.MkdirTemp("", "argocd-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := sandbox.Start(sandbox.Config{Bin: bin, Dir: dir})
	if err != nil {
		t.Log(sandbox.Logs(dir, 3000))
		t.Fatalf("argocd harness: %v (logs in %s)", err, dir)
	}
	h := &Harness{Stack: st, t: t}
	t.Cleanup(h.Close)
	t.Logf("argocd harness up in %s (server %s)", time.Since(start).Round(time.Millisecond), h.Server)
	return h
}

// Close stops everything and removes the working directory (kept, with logs, when the test failed).
func (h *Harness) Close() {
	h.Stop()
	if h.t.Failed() {
		h.t.Logf("%s", h.Logs(3000))
		h.t.Logf("harness logs kept in %s", h.Dir)
		return
	}
	_ = os.RemoveAll(h.Dir)
}

// RolloutsManifests finds the manifests/ directory of the argo-rollouts module that
// hack/e2e/rollouts builds the harness's controller from (hack/e2e/build.sh downloads it).
func RolloutsManifests() (string, error) {
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/argoproj/argo-rollouts")
	cmd.Dir = filepath.Join(filepath.Dir(self), "..", "..", "..", "hack", "e2e", "rollouts")
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return "", fmt.Errorf("locate the argo-rollouts module (run hack/e2e/build.sh): %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "manifests"), nil
}

// ArgoManifests finds the manifests/ directory of the argo-cd module that the GitOps program
// (ci/cmd/gitops, the Go module that requires it) builds with.
func ArgoManifests() (string, error) {
	_, self, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/argoproj/argo-cd/v2")
	cmd.Dir = filepath.Join(filepath.Dir(self), "..", "..", "cmd", "gitops")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locate the argo-cd module: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "manifests"), nil
}
