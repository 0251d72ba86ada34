package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLeavesRealGeneratedCodeAlone(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "go.mod"), "module example.test/mod\n\ngo 1.26.1\n")
	real := realHeader + "\n\npackage dagger\n\n// real generated code\n"
	write(t, filepath.Join(dir, "internal/dagger/dagger.gen.go"), real)
	write(t, filepath.Join(dir, "go.stub.mod"), "stale")
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "internal/dagger/dagger.gen.go"))
	if string(got) != real {
		t.Errorf("real generated code was overwritten:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "dagger.gen.go")); !os.IsNotExist(err) {
		t.Errorf("dagger.gen.go written beside real generated code: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.stub.mod")); !os.IsNotExist(err) {
		t.Errorf("stale go.stub.mod kept: %v", err)
	}
}

// TestStubCompilesAModule generates the stub for a small module that uses SDK types, a generic
// helper and the global dag, builds and vets it with go.stub.mod, and checks go.mod is untouched.
func TestStubCompilesAModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	dir := t.TempDir()
	gomod := "module example.test/mod\n\ngo 1.26.1\n"
	write(t, filepath.Join(dir, "go.mod"), gomod)
	write(t, filepath.Join(dir, "main.go"), `package main

import (
	"context"

	"example.test/mod/internal/dagger"
)

// Mod is a module.
type Mod struct{}

// Build returns a container.
func (m *Mod) Build(src *dagger.Directory, tok *dagger.Secret) *dagger.Container {
	return dag.Container().From("alpine:3.20").
		WithSecretVariable("TOKEN", tok).
		WithMountedCache("/c", dag.CacheVolume("c"), dagger.ContainerWithMountedCacheOpts{Sharing: dagger.CacheSharingModeLocked}).
		WithDirectory("/src", src)
}

// Load uses a generic wrapper.
func (m *Mod) Load(ctx context.Context, id dagger.ID) (*dagger.Container, error) {
	return dagger.Load[*dagger.Container](ctx, dag, id)
}
`)
	// A file the stub wrote before is replaced without complaint.
	write(t, filepath.Join(dir, "dagger.gen.go"), stubHeader+"\npackage main\n")
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"build", "-modfile=go.stub.mod", "./..."}, {"vet", "-modfile=go.stub.mod", "./..."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "go.mod")); string(got) != gomod {
		t.Errorf("go.mod changed:\n%s", got)
	}
	stub, _ := os.ReadFile(filepath.Join(dir, "go.stub.mod"))
	if !strings.Contains(string(stub), "dagger.io/dagger v0.21.9") {
		t.Errorf("go.stub.mod does not pin the SDK:\n%s", stub)
	}
}

// The engine compiles the module with the ci/go.mod that its codegen writes (recorded from `dagger
// develop` v0.21.8 in ../shared/fixtures/dagger-develop). ci/go.mod must hold every requirement and
// replace of that file at the same or a newer version, and the stub's build of the ci packages (what
// `make test` compiles) must select exactly ci/go.mod's versions: tests run on what the engine builds.
func TestStubBuildsWithTheEnginesVersions(t *testing.T) {
	ciMod := parseMod(t, "../../ci/go.mod")
	// What the module builds (its packages and tests): the recorded requirements it still uses must be
	// in ci/go.mod; the ones that left with the GitOps program (ci/cmd/gitops: Argo CD, Kubernetes)
	// need not.
	list := exec.Command("go", "list", "-e", "-modfile=go.stub.mod", "-deps", "-test", "-f", "{{with .Module}}{{.Path}}{{end}}", "./...")
	list.Dir = "../../ci"
	usedOut, _ := list.Output()
	used := map[string]bool{}
	for _, m := range strings.Fields(string(usedOut)) {
		used[m] = true
	}
	recorded := "../../../shared/fixtures/dagger-develop/ci.go.mod.after-develop"
	if _, err := os.Stat(recorded); err == nil {
		for path, v := range parseMod(t, recorded).Require {
			got, ok := ciMod.Require[path]
			if !ok && !used[path] {
				continue
			}
			if !ok || semver.Compare(got, v) < 0 {
				t.Errorf("ci/go.mod requires %s %q; the engine's codegen writes %s", path, got, v)
			}
		}
		for path, v := range parseMod(t, recorded).Replace {
			if !strings.HasPrefix(path, "go.opentelemetry.io/") {
				continue // the codegen's own are OpenTelemetry's; the others were Argo CD's client's, now ci/cmd/gitops/go.mod's
			}
			if ciMod.Replace[path] != v {
				t.Errorf("ci/go.mod replaces %s with %q; the engine's codegen writes %q", path, ciMod.Replace[path], v)
			}
		}
	} else {
		t.Logf("no recorded codegen output at %s; checking the stub against ci/go.mod only", recorded)
	}
	if _, err := os.Stat("../../ci/go.stub.mod"); err != nil {
		t.Skip("no ci/go.stub.mod (run `make stub`, or dagger develop generated the real code)")
	}
	cmd := exec.Command("go", "list", "-e", "-modfile=go.stub.mod", "-deps", "-f", "{{with .Module}}{{.Path}} {{with .Replace}}{{.Version}}{{else}}{{.Version}}{{end}}{{end}}", "./...")
	cmd.Dir = "../../ci"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(string(out), "\n") {
		path, v, ok := strings.Cut(line, " ")
		if !ok || v == "" {
			continue
		}
		if want, listed := ciMod.Require[path]; listed {
			checked++
			if r, replaced := ciMod.Replace[path]; replaced {
				want = r
			}
			if v != want {
				t.Errorf("the stub build uses %s %s; ci/go.mod (the engine's build) selects %s", path, v, want)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d modules compared; go list output:\n%s", checked, out)
	}
}

type modFile struct{ Require, Replace map[string]string }

func parseMod(t *testing.T, path string) modFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse(path, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := modFile{Require: map[string]string{}, Replace: map[string]string{}}
	for _, r := range f.Require {
		m.Require[r.Mod.Path] = r.Mod.Version
	}
	for _, r := range f.Replace {
		m.Replace[r.Old.Path] = r.New.Version
	}
	return m
}
