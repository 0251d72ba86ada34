package recipe

// The recipes as plans: no engine runs here, so the stand-in session records what the module asks
// the engine to do, and each test checks a property the real containers depend on.

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/sandbox/layout"
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
	prog := runner.Build(c, c.Directory(), "", runner.GoEnv{"GOPROXY": "https://goproxy.corp.invalid", "GONOSUMDB": "corp.invalid"})
	sb := Sandbox{Program: prog, Kubernetes: c.Directory(), Login: Login(login)}
	svc := sb.Services(c)
	images := map[string]*dagger.Container{"backend": c.Container().From("registry.invalid/b:1"), "frontend": c.Container().From("registry.invalid/f:1")}
	for _, run := range []string{"run-1", "run-2"} {
		if _, err := Deploy(sb.Runner(svc, run), images, "dev", "2.0.0", "").Stdout(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Promote(sb.Runner(svc, "run-3"), "dev", "staging").Stdout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Up(svc).ID(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range session.Queries() {
		queries = append(queries, session.Expand(q))
	}
	return strings.Join(queries, "\n"), queries
}

// Every image is pinned to a version and fully qualified (no latest, no bare name).
func TestEveryImageIsPinned(t *testing.T) {
	all, _ := plan(t)
	pinned := regexp.MustCompile(`^[a-z0-9-]+\.[a-z0-9.-]+/[a-z0-9/._-]+:v?[0-9][A-Za-z0-9._-]*$`)
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

// The services: Argo CD's repo-server binds the git service under the name its applications use;
// the bootstrap (the program) gets kubernetes/argocd's applications, the repository they track and
// the login by its defaults; the runner binds all four and each run is its own exec (never a cached
// result); up forwards every port; the program is built with the caller's Go settings.
func TestServicesAndBindings(t *testing.T) {
	all, _ := plan(t)
	if !daggerfake.HasCall(all, "withServiceBinding", `alias:"git"`) {
		t.Error("Argo CD does not bind the git service")
	}
	for _, p := range []string{"8080", "8081", "8082", "6379", "5000", "1025", "8025"} {
		if !daggerfake.HasCall(all, "withExposedPort", "port:"+p) {
			t.Errorf("port %s is not exposed", p)
		}
	}
	if !daggerfake.HasCall(all, "asService", `args:["`+runner.Bin+`","sandbox-bootstrap"]`) ||
		!daggerfake.HasCall(all, "withDirectory", `path:"`+layout.ImageKubernetes+`"`) {
		t.Errorf("the bootstrap does not run with kubernetes/ where its defaults read it:\n%s", all)
	}
	if !daggerfake.HasCall(all, "withEnvVariable", `name:"GOPROXY"`, `value:"https://goproxy.corp.invalid"`) {
		t.Error("the program is not built with the caller's Go settings")
	}
	for _, alias := range []string{layout.GitHost, layout.RegistryHost, layout.MailHost, layout.ArgoCDHost} {
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
	if !daggerfake.HasCall(all, "withExec", `"`+runner.Bin+`","sandbox-deploy","--env","dev","--version","2.0.0","--image","backend=/images/backend.tar","--image","frontend=/images/frontend.tar"`) {
		t.Errorf("the runner's deploy is not recorded:\n%s", all)
	}
	if !daggerfake.HasCall(all, "withMountedFile", `path:"/images/backend.tar"`) {
		t.Error("the backend's tarball is not mounted in the runner")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
