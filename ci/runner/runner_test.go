package runner

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

// Packages is exactly what the program compiles from ci/: a package missing from it fails the build
// in the engine, one too many rebuilds the program for edits it does not contain.
func TestPackagesAreWhatTheProgramImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".")
	cmd.Dir = "../cmd/gitops"
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(p, "wanderlust.dev/pipeline/ci/"); ok {
			want = append(want, rel)
		}
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(Packages))
	if !slices.Equal(got, want) {
		t.Errorf("Packages = %q\nthe program imports %q", got, want)
	}
	cmd = exec.Command("go", "list", "-deps", "-f", `{{$d := .Dir}}{{range .EmbedFiles}}{{$d}}/{{.}} {{end}}`, ".")
	cmd.Dir = "../cmd/gitops"
	if out, err = cmd.Output(); err != nil {
		t.Fatal(err)
	}
	ci, _ := filepath.Abs("..")
	var embeds []string
	for _, f := range strings.Fields(string(out)) {
		if rel, err := filepath.Rel(ci, f); err == nil && !strings.HasPrefix(rel, "..") {
			embeds = append(embeds, filepath.ToSlash(rel))
		}
	}
	slices.Sort(embeds)
	if got := slices.Sorted(slices.Values(Embeds)); !slices.Equal(got, embeds) {
		t.Errorf("Embeds = %q\nthe program embeds %q", got, embeds)
	}
}

// session records the plan; exec leaves answer as a program that printed a failed run's result.
func session(t *testing.T, code int, stdout string) *daggerfake.Server {
	t.Helper()
	return daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		switch field {
		case "exitCode":
			return code, nil
		case "stdout":
			return stdout, nil
		case "stderr":
			return "wanderlust-gitops deploy: boom", nil
		}
		return daggerfake.Default(field, q)
	}))
}

// The build copies the module files and the program's packages' Go files only (no tests, nothing
// of the container stages), into directories the Go image has; the program lands on the PATH.
func TestBuildCopiesOnlyWhatTheProgramCompiles(t *testing.T) {
	s := session(t, 0, `{"Output":"ok"}`)
	c := dagger.Connect()
	res, err := Run(context.Background(), Build(c, c.Host().Directory("."), "", GoEnv{"GOPROXY": "https://mirror.invalid", "HOME": "/x"}), gitops.CmdSync, gitops.Sync{App: "a"}, nil)
	if err != nil || res.Output != "ok" {
		t.Fatalf("%v %+v", err, res)
	}
	all := s.Expand(s.All())
	for _, p := range Packages {
		if !daggerfake.HasCall(all, "withDirectory", `path:"`+p+`"`, `include:["*.go"]`, `exclude:["*_test.go"]`) {
			t.Errorf("package %s is not copied (Go files only, no tests)", p)
		}
	}
	for _, f := range Embeds {
		if !daggerfake.HasCall(all, "withFile", `path:"`+f+`"`) {
			t.Errorf("%s (embedded by the program) is not copied", f)
		}
	}
	for _, p := range []string{"stages/build", "stages/scan", "stages/publish", "sandbox/recipe", "internal/dagger"} {
		if daggerfake.HasCall(all, "withDirectory", `path:"`+p+`"`) {
			t.Errorf("%s is copied: an edit there would rebuild the program", p)
		}
	}
	for _, want := range [][]string{
		{"from", `address:"` + GoImage + `"`},
		{"withMountedCache", `path:"/go/pkg/mod"`}, {"withMountedCache", `path:"/root/.cache/go-build"`},
		{"withWorkdir", `path:"/src/ci/cmd/gitops"`},
		{"withExec", `"go","build"`, `"-o","` + Bin + `"`},
		{"withEnvVariable", `name:"GOPROXY"`, `value:"https://mirror.invalid"`},
		{"withExec", `"` + Bin + `","sync","--request"`, `expect:ANY`},
	} {
		if !daggerfake.HasCall(all, want[0], want[1:]...) {
			t.Errorf("plan lacks %s(%s)", want[0], strings.Join(want[1:], ", "))
		}
	}
	if daggerfake.HasCall(all, "withEnvVariable", `name:"HOME"`) {
		t.Error("a variable other than Go's settings was passed to the build")
	}
}

// A published image is pulled and nothing is compiled; credentials go as secret variables only;
// a failed run's result is read from stdout (exit 1); a program that cannot answer (exit 2, a wrong
// image) is an error naming the command and what it printed.
func TestRunPulledImageSecretsAndExitCodes(t *testing.T) {
	s := session(t, 1, `{"Error":"deploy: rollout failed","Report":{"title":"Wanderlust deploy","result":"failed"}}`)
	c := dagger.Connect()
	secret := c.SetSecret("git", "tok")
	res, err := Run(context.Background(), Pull(c, "ghcr.io/acme/wanderlust-gitops:v1.0.0"), gitops.CmdDeploy, gitops.Deploy{Env: "dev"},
		map[string]*dagger.Secret{gitops.EnvGitToken: secret, gitops.EnvSMTPPassword: nil})
	if err != nil || res.Error != "deploy: rollout failed" || res.Report == nil || res.Report.Result != "failed" {
		t.Fatalf("%v %+v", err, res)
	}
	all := s.Expand(s.All())
	if !daggerfake.HasCall(all, "from", `address:"ghcr.io/acme/wanderlust-gitops:v1.0.0"`) || strings.Contains(all, `"go","build"`) {
		t.Errorf("the image is not pulled, or the program is built:\n%s", all)
	}
	if !daggerfake.HasCall(all, "withSecretVariable", `name:"`+gitops.EnvGitToken+`"`) || strings.Contains(all, gitops.EnvSMTPPassword) {
		t.Errorf("secret variables: %q", daggerfake.Calls(all, "withSecretVariable"))
	}
	s = session(t, 2, "")
	_ = s
	if _, err := Run(context.Background(), Pull(dagger.Connect(), "x"), gitops.CmdDeploy, gitops.Deploy{}, nil); err == nil ||
		!strings.Contains(err.Error(), "wanderlust-gitops deploy exited with 2") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v", err)
	}
}

// --go-env takes Go's module settings only, and never a value with credentials (it would sit in the
// build's plain environment); the error does not echo the value.
func TestParseGoEnv(t *testing.T) {
	env, err := ParseGoEnv([]string{"GOPROXY=https://goproxy.corp.invalid,direct", "GOFLAGS=-mod=mod"})
	if err != nil || env["GOPROXY"] != "https://goproxy.corp.invalid,direct" || env["GOFLAGS"] != "-mod=mod" {
		t.Fatalf("%v %v", env, err)
	}
	for _, bad := range []string{"HOME=/root", "GOPROXY", "GOPROXY=https://bob:s3cret@goproxy.corp.invalid", "PATH=s3cret"} {
		_, err := ParseGoEnv([]string{bad})
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: the error echoes the value: %v", bad, err)
		}
	}
}
