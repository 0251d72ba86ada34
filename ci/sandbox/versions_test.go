package sandbox_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/sandbox/layout"
	"wanderlust.dev/pipeline/ci/testsupport/argocdharness"
)

// moduleDir downloads a Go module (through the module proxy, checksum-verified) and returns its
// directory.
func moduleDir(t *testing.T, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", mod, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", mod, m.Error, err)
	}
	return m.Dir
}

// What the tests prove on the host is what the sandbox runs: its images carry the versions of the
// harness's binaries (hack/e2e/build.sh), the kwok cluster image it pins exists (kwok v0.8.0
// publishes it for the Kubernetes versions of its supported_releases.txt) and runs the harness's
// etcd, and redis and Argo CD are those of Argo CD's own install.yaml.
func TestTheSandboxRunsTheHarnesssVersions(t *testing.T) {
	script, err := os.ReadFile("../../hack/e2e/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^versions=k8s-(v[0-9.]+)_etcd-v([0-9.]+)_argocd-(v[0-9.]+)_kwok-(v[0-9.]+)\s`).FindSubmatch(script)
	if m == nil {
		t.Fatal("build.sh names no versions")
	}
	k8s, etcd, argo, kwok := string(m[1]), string(m[2]), string(m[3]), string(m[4])
	if want := "k8s-" + k8s + "_etcd-v" + etcd + "_argocd-" + argo + "_kwok-" + kwok; want != argocdharness.Versions {
		t.Errorf("build.sh builds %s, the harness runs %s", want, argocdharness.Versions)
	}
	if k8s != layout.KubernetesVersion || argo != layout.ArgoCDVersion || kwok != layout.KwokVersion {
		t.Errorf("the harness runs Kubernetes %s, Argo CD %s, kwok %s; the sandbox %s, %s, %s", k8s, argo, kwok,
			layout.KubernetesVersion, layout.ArgoCDVersion, layout.KwokVersion)
	}
	if want := "registry.k8s.io/kwok/cluster:" + kwok + "-k8s." + k8s; layout.KubeImage != want {
		t.Errorf("KubeImage = %s, want %s", layout.KubeImage, want)
	}
	// Argo Rollouts: the controller build.sh stamps, the module hack/e2e/rollouts builds it from, and
	// the sandbox's image are one version.
	gomod, err := os.ReadFile("../../hack/e2e/rollouts/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	stamp := regexp.MustCompile(`utils/version\.version=([0-9.]+)`).FindSubmatch(script)
	req := regexp.MustCompile(`(?m)^require github\.com/argoproj/argo-rollouts (v[0-9.]+)$`).FindSubmatch(gomod)
	if stamp == nil || req == nil || "v"+string(stamp[1]) != layout.RolloutsVersion || string(req[1]) != layout.RolloutsVersion ||
		!strings.HasSuffix(layout.RolloutsImage, ":"+layout.RolloutsVersion) {
		t.Errorf("Argo Rollouts: build.sh stamps %s, hack/e2e/rollouts requires %s, the sandbox runs %s (%s)", stamp, req, layout.RolloutsVersion, layout.RolloutsImage)
	}
	if mp := regexp.MustCompile(`mailpit@(v[0-9.]+)`).FindSubmatch(script); mp == nil || !strings.HasSuffix(layout.MailpitImage, ":"+string(mp[1])) {
		t.Errorf("the harness's Mailpit (%s) is not the sandbox's %s", mp, layout.MailpitImage)
	}

	dir := moduleDir(t, "sigs.k8s.io/kwok@"+kwok)
	releases, err := os.ReadFile(filepath.Join(dir, "supported_releases.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(releases)), strings.TrimPrefix(k8s, "v")) {
		t.Errorf("kwok %s publishes no cluster image for Kubernetes %s (its releases: %s)", kwok, k8s, strings.Fields(string(releases)))
	}
	etcdVersions, err := os.ReadFile(filepath.Join(dir, "pkg/kwokctl/components/etcd_version.go"))
	if err != nil {
		t.Fatal(err)
	}
	minor := strings.Split(k8s, ".")[1]
	if e := regexp.MustCompile(`(?m)^\s*` + minor + `:\s*"([0-9.]+)-0"`).FindSubmatch(etcdVersions); e == nil || string(e[1]) != etcd {
		t.Errorf("kwok's cluster image runs etcd %s for Kubernetes 1.%s, the harness %s", e, minor, etcd)
	}

	manifests, err := argocdharness.ArgoManifests()
	if err != nil {
		t.Fatal(err)
	}
	install, err := os.ReadFile(filepath.Join(manifests, "install.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []struct{ ours, theirs string }{
		{layout.ArgoCDImage, "quay.io/argoproj/argocd:"},
		{layout.RedisImage, "redis:"},
	} {
		m := regexp.MustCompile(`image: (` + regexp.QuoteMeta(img.theirs) + `\S+)`).FindSubmatch(install)
		if m == nil {
			t.Fatalf("install.yaml has no %s image", img.theirs)
		}
		theirs := string(m[1])
		if !strings.Contains(theirs, "/") {
			theirs = "docker.io/library/" + theirs // how a bare Docker Hub name resolves
		}
		if img.ours != theirs {
			t.Errorf("the sandbox runs %s, Argo CD's install.yaml %s", img.ours, theirs)
		}
	}
}
