package recipe

// The recipes as plans: no engine runs here, so the stand-in session records what the module asks
// the engine to do, and each test checks a property the real containers depend on.

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"wanderlust.dev/pipeline/ci/runner"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/sandbox"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

const login = "sandbox-login-51ab"

// plan records the whole sandbox: two deploy runs, a promote and up, and returns every recorded
// pipeline, expanded.
func plan(t *testing.T) (all string, queries []string) {
	t.Helper()
	session := daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		if field == "plaintext" {
			return "unused", nil
		}
		return daggerfake.Default(field, q)
	}))
	c := dagger.Connect()
	ctx := context.Background()
	src := c.Directory()
	s := Login(login)
	img := Image(c, src, runner.GoEnv{"GOPROXY": "https://goproxy.corp.invalid", "GONOSUMDB": "corp.invalid"})
	git := Git(img, s)
	svc := Services{Git: git, Registry: Registry(img), Mail: Mail(img), ArgoCD: ArgoCD(img, git, s)}
	images := map[string]*dagger.Container{"backend": c.Container().From("registry.invalid/b:1"), "frontend": c.Container().From("registry.invalid/f:1")}
	for _, run := range []string{"run-1", "run-2"} {
		if _, err := Deploy(Runner(img, svc, s, run), images, "dev", "2.0.0", "").Stdout(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Promote(Runner(img, svc, s, "run-3"), "dev", "staging").Stdout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Up(img, svc, s).ID(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range session.Queries() {
		queries = append(queries, session.Expand(q))
	}
	return strings.Join(queries, "\n"), queries
}

// Every image is pinned to a version (no latest, no bare name).
func TestEveryImageIsPinned(t *testing.T) {
	all, _ := plan(t)
	pinned := regexp.MustCompile(`^[a-z0-9.-]+/[a-z0-9/._-]+:[0-9][A-Za-z0-9._-]*$`)
	n := 0
	for _, a := range daggerfake.Calls(all, "from") {
		if !strings.HasPrefix(a, `address:"`) {
			continue // "--from" in an exec's arguments
		}
		ref := strings.TrimSuffix(strings.TrimPrefix(a, `address:"`), `"`)
		if strings.HasPrefix(ref, "registry.invalid/") {
			continue // the test's stand-ins for the built images
		}
		n++
		if !pinned.MatchString(ref) {
			t.Errorf("image %q is not pinned to a version", ref)
		}
	}
	if n == 0 {
		t.Fatal("no image recorded")
	}
}

// The sandbox's login is a plain value on purpose (Dagger scrubs a secret from every output, so a
// secret login could never be printed for the user): every service and the runner get it as
// SANDBOX_GIT_PASSWORD and SANDBOX_ARGOCD_PASSWORD, and it is in no argument.
func TestTheLoginIsPlainAndPrintable(t *testing.T) {
	all, _ := plan(t)
	for _, name := range []string{"SANDBOX_GIT_PASSWORD", "SANDBOX_ARGOCD_PASSWORD"} {
		if !daggerfake.HasCall(all, "withEnvVariable", `name:"`+name+`"`, `value:"`+login+`"`) {
			t.Errorf("%s is not the login", name)
		}
		if daggerfake.HasCall(all, "withSecretVariable", `name:"`+name+`"`) {
			t.Errorf("%s is a secret: Dagger would print *** for it", name)
		}
	}
	for _, a := range daggerfake.Calls(all, "withExec") {
		if strings.Contains(a, login) {
			t.Errorf("the login is an argument: %s", a)
		}
	}
}

// The builder: Go module and build caches, static binaries, the harness's own build script into
// /out/bin, and every directory it writes into made before the exec that writes it (go build -o and
// cp do not make parent directories).
func TestBuilderCachesAndWritesIntoDirectoriesThatExist(t *testing.T) {
	all, queries := plan(t)
	for _, want := range [][]string{
		{"withMountedCache", `path:"/go/pkg/mod"`}, {"withMountedCache", `path:"/root/.cache/go-build"`},
		{"withEnvVariable", `name:"CGO_ENABLED"`, `value:"0"`}, {"withEnvVariable", `name:"WANDERLUST_E2E_BIN"`, `value:"/out/bin"`},
		{"withExec", `"bash","/src/hack/e2e/build.sh"`}, {"withExec", `"go","build"`, `"/out/wanderlust-gitops"`},
	} {
		if !daggerfake.HasCall(all, want[0], want[1:]...) {
			t.Errorf("builder lacks %v", want)
		}
	}
	writes := regexp.MustCompile(`(?:"-o","|/out/argo-cd/manifests)(/out/[a-z-]+)`)
	pathArg := regexp.MustCompile(`path:\\?"([^"\\]+)`)
	checked := 0
	for _, q := range queries {
		steps := daggerfake.Steps(q)
		// The builder's own pipelines (elsewhere it is nested inside another step's arguments).
		if len(steps) < 2 || steps[1].Field != "from" || !strings.Contains(steps[1].Args, GoImage) {
			continue
		}
		var made []string
		exists := func(dir string) bool {
			for _, m := range made {
				if m == dir || strings.HasPrefix(m, dir+"/") {
					return true
				}
			}
			return false
		}
		for _, st := range steps {
			switch st.Field {
			case "withDirectory", "withMountedDirectory", "withMountedCache":
				if m := pathArg.FindStringSubmatch(st.Args); m != nil {
					made = append(made, m[1])
				}
			case "withExec":
				for _, m := range writes.FindAllStringSubmatch(st.Args, -1) {
					dir := m[1]
					if strings.Contains(st.Args, `"-o","`+dir+`"`) {
						dir = "/out" // go build -o /out/wanderlust-gitops writes a file into /out
					}
					checked++
					if !exists(dir) {
						t.Errorf("an exec writes into %s before anything made it: %s", dir, st.Args)
					}
				}
				if strings.Contains(st.Args, "build.sh") {
					checked++
					if !exists("/out/bin") {
						t.Error("build.sh runs before /out/bin exists")
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatalf("no write into /out recorded:\n%s", all)
	}
}

// The services: Argo CD binds the git service under the name its applications use, waits on its
// health port, and gets the applications of kubernetes/argocd; the runner binds all four and each
// run is its own exec (never a cached result); up forwards every port.
func TestServicesAndBindings(t *testing.T) {
	all, _ := plan(t)
	if !daggerfake.HasCall(all, "withServiceBinding", `alias:"git"`) {
		t.Error("Argo CD does not bind the git service")
	}
	for _, p := range []string{"8080", "8081"} {
		if !daggerfake.HasCall(all, "withExposedPort", "port:"+p) {
			t.Errorf("port %s is not exposed", p)
		}
	}
	if !daggerfake.HasCall(all, "asService", `"wanderlust-gitops","argocd","--repo-url","`+sandbox.RepoURL()+`"`, `"--apps","`+sandbox.ImageKubernetes+`/argocd"`) {
		t.Errorf("Argo CD's service does not track %s with kubernetes/argocd's apps:\n%s", sandbox.RepoURL(), all)
	}
	for _, alias := range []string{sandbox.GitHost, sandbox.RegistryHost, sandbox.MailHost, sandbox.ArgoCDHost} {
		if !daggerfake.HasCall(all, "withServiceBinding", `alias:"`+alias+`"`) {
			t.Errorf("no binding %s", alias)
		}
	}
	runs := daggerfake.Calls(all, "withEnvVariable")
	var ids []string
	for _, r := range runs {
		if strings.Contains(r, `name:"SANDBOX_RUN"`) {
			ids = append(ids, r)
		}
	}
	if len(ids) < 3 || ids[0] == ids[1] {
		t.Errorf("runs are not told apart (the engine would serve the second from its cache): %v", ids)
	}
	for _, p := range Ports {
		if !daggerfake.HasCall(all, "withExposedPort", "port:"+itoa(p.Port)) || !strings.Contains(all, itoa(p.Port)+"="+p.Target) {
			t.Errorf("up does not forward %d to %s", p.Port, p.Target)
		}
	}
	if !daggerfake.HasCall(all, "withExec", `"wanderlust-gitops","sandbox-deploy","--env","dev","--version","2.0.0","--image","backend=/images/backend.tar","--image","frontend=/images/frontend.tar"`) {
		t.Errorf("the runner's deploy is not recorded:\n%s", all)
	}
	if !daggerfake.HasCall(all, "withMountedFile", `path:"/images/backend.tar"`) {
		t.Error("the backend's tarball is not mounted in the runner")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The builder copies only part of ci/ into the Go container: everything the GitOps program
// (cmd/gitops, a module of its own) imports from this module must be in it (and nothing of the
// generated Dagger code, which does not exist there).
func TestBuilderCopiesWhatTheEntrypointImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".")
	cmd.Dir = "../../cmd/gitops"
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, pkg := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(pkg, "wanderlust.dev/pipeline/ci/")
		if !ok {
			continue
		}
		n++
		copied := false
		for _, pattern := range ciIncludes {
			if prefix, ok := strings.CutSuffix(pattern, "/**"); ok && (rel == prefix || strings.HasPrefix(rel, prefix+"/")) {
				copied = true
			}
		}
		if !copied || strings.HasPrefix(rel, "internal/") {
			t.Errorf("the GitOps program needs %s, which the builder does not copy (or cannot have)", rel)
		}
	}
	if n == 0 {
		t.Fatal("no package of this module listed")
	}
}

// A team behind a module mirror gives its Go settings (--go-env): the builder compiles with them.
func TestBuilderHonoursTheCallersGoSettings(t *testing.T) {
	all, _ := plan(t)
	for _, want := range [][]string{{`name:"GOPROXY"`, `value:"https://goproxy.corp.invalid"`}, {`name:"GONOSUMDB"`, `value:"corp.invalid"`}} {
		if !daggerfake.HasCall(all, "withEnvVariable", want...) {
			t.Errorf("the builder does not set %s", want[0])
		}
	}
}
