package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// splitBase is the last commit before the GitOps program left the module's Go graph: the "before"
// is measured on a worktree of it, in the same run (its module graph and a cold build of it).
const splitBase = "8b9ecb6"

// BenchmarkModuleLoad measures what a cold engine compiles before any function of the module runs:
// the package count of the module's main package, and a cold `go build` of it (empty build cache,
// module cache warm), before and after the split; and the GitOps program's own cold build, which a
// deploy pays once per engine unless --runner-image is given.
func BenchmarkModuleLoad(b *testing.B) {
	root, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	old := filepath.Join(b.TempDir(), "before")
	if out, err := exec.Command("git", "-C", root, "worktree", "add", "--detach", old, splitBase).CombinedOutput(); err != nil {
		b.Skipf("no worktree of %s (a shallow clone?): %v\n%s", splitBase, err, out)
	}
	defer exec.Command("git", "-C", root, "worktree", "remove", "--force", old).Run()
	if out, err := run(old, nil, "go", "run", "./hack/daggerstub"); err != nil {
		b.Fatalf("stub of %s: %v\n%s", splitBase, err, out)
	}
	if out, err := run(root, nil, "go", "run", "./hack/daggerstub"); err != nil {
		b.Fatalf("stub: %v\n%s", err, out)
	}
	count := func(dir string) int {
		out, err := run(filepath.Join(dir, "ci"), nil, "go", "list", "-modfile=go.stub.mod", "-deps", ".")
		if err != nil {
			b.Fatalf("go list in %s: %v\n%s", dir, err, out)
		}
		return len(strings.Fields(out))
	}
	build := func(cache, dir string, args ...string) time.Duration {
		start := time.Now()
		if out, err := run(dir, []string{"GOCACHE=" + cache, "GOFLAGS=-buildvcs=false"}, "go", append([]string{"build", "-o", os.DevNull}, args...)...); err != nil {
			b.Fatalf("cold build in %s: %v\n%s", dir, err, out)
		}
		return time.Since(start)
	}
	cold := func(dir string, args ...string) time.Duration { return build(b.TempDir(), dir, args...) }
	after, before := count(root), count(old)
	afterMs := cold(filepath.Join(root, "ci"), "-modfile=go.stub.mod", ".")
	beforeMs := cold(filepath.Join(old, "ci"), "-modfile=go.stub.mod", ".")
	// The program, as the sandbox's and deploy's build compiles it: cold, then again with the build
	// cache of the first (the engine's cache volume) — a sandbox run after an edit outside its packages.
	programCache := b.TempDir()
	program := build(programCache, filepath.Join(root, "ci", "cmd", "gitops"), ".")
	programWarm := build(programCache, filepath.Join(root, "ci", "cmd", "gitops"), ".")
	fmt.Printf("BENCH P6 module_packages=%d module_packages_before=%d compile_cold_ms=%d compile_cold_before_ms=%d ratio=%.2f program_compile_cold_ms=%d program_compile_warm_ms=%d goal_packages=600 goal_ratio=0.30\n",
		after, before, afterMs.Milliseconds(), beforeMs.Milliseconds(), afterMs.Seconds()/beforeMs.Seconds(), program.Milliseconds(), programWarm.Milliseconds())
}

func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
