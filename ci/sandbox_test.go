package main

import (
	"context"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/sandbox/layout"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

// A bad environment or version is refused before anything is built or started.
func TestSandboxChecksInputsBeforeBuilding(t *testing.T) {
	for _, tc := range []struct{ env, version, want string }{
		{"Prod", "2.0.0", "Prod"}, {"dev", "bad tag", "version"}, {"../dev", "2.0.0", "dev"},
	} {
		session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
		c := useSession(t)
		_, err := (&Wanderlust{}).Sandbox(c.Directory(), c.Directory(), "").Deploy(context.Background(), tc.env, tc.version, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %q version %q: err = %v", tc.env, tc.version, err)
		}
		if strings.Contains(session.All(), "withExec") || strings.Contains(session.All(), "asService") {
			t.Errorf("env %q version %q: built or started something before refusing", tc.env, tc.version)
		}
	}
	session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
	c := useSession(t)
	_, err := (&Wanderlust{GoEnv: []string{"GOPROXY=https://bob:s3cret@goproxy.invalid"}}).Sandbox(c.Directory(), c.Directory(), "").Deploy(context.Background(), "dev", "2.0.0", false)
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(session.All(), "withExec") {
		t.Errorf("a Go setting with credentials: err = %v, built: %v", err, strings.Contains(session.All(), "withExec"))
	}
	if _, err := (&Wanderlust{}).Sandbox(nil, nil, "").Promote(context.Background(), "dev", "Staging"); err == nil {
		t.Error("promote to Staging accepted")
	}
}

// The sandbox's deploy is one report: the module's build stage goes to the runner, which goes on
// with it; a failed run (exit 1) returns its report in the error, and where to look — not the
// engine's "exit code: 1".
func TestSandboxDeployIsOneReport(t *testing.T) {
	for _, code := range []int{0, 1} {
		session := daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
			switch field {
			case "exitCode":
				return code, nil
			case "stdout":
				return "| sync | failed | rolled back |", nil
			}
			return daggerfake.Default(field, q)
		}))
		c := useSession(t)
		out, err := (&Wanderlust{}).Sandbox(c.Directory(), c.Directory(), "").Deploy(context.Background(), "dev", "2.0.0", true)
		runs := daggerfake.Calls(session.All(), "withExec")
		var deploy string
		for _, r := range runs {
			if strings.Contains(r, `"sandbox-deploy"`) {
				deploy = r
			}
		}
		if !strings.Contains(deploy, `"--report"`) || !strings.Contains(deploy, `\"name\": \"build\"`) || !strings.Contains(deploy, "expect:ANY") {
			t.Errorf("the runner does not get the build stage, or fails on a failed run: %s", deploy)
		}
		switch {
		case code == 0 && (err != nil || !strings.Contains(out, "rolled back") || !strings.Contains(out, "dagger call sandbox")):
			t.Errorf("exit 0: %q %v", out, err)
		case code == 1 && (err == nil || !strings.Contains(err.Error(), "sandbox deploy: exited with 1") || !strings.Contains(err.Error(), "| sync | failed")):
			t.Errorf("exit 1: %v", err)
		}
	}
}

// One session: `sandbox up --deploy --promote-to staging` starts the four services itself (Dagger
// keeps started services for the session), deploys and promotes through runners bound to them, and
// forwards the very same service definitions to the host — what the browser shows is what was
// deployed.
func TestSandboxUpShowsWhatItDeployed(t *testing.T) {
	session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
	c := useSession(t)
	sb := (&Wanderlust{}).Sandbox(c.Directory(), c.Directory(), "")
	if _, err := sb.Up(context.Background(), false, "2.0.0", "staging"); err == nil {
		t.Error("--promote-to without --deploy accepted")
	}
	svc, err := sb.Up(context.Background(), true, "2.0.0", "staging")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ID(context.Background()); err != nil {
		t.Fatal(err)
	}
	bindings := func(q string) map[string]string {
		out := map[string]string{}
		for _, a := range daggerfake.Calls(q, "withServiceBinding") {
			alias, id := argValue(a, "alias"), regexp.MustCompile(`fake-id-[0-9a-f]{16}`).FindString(a)
			out[alias] = session.Definition(id) // as the engine compares them: by content
		}
		return out
	}
	started := 0
	var runs []map[string]string
	var up map[string]string
	for _, q := range session.Queries() {
		switch {
		case strings.HasSuffix(strings.TrimRight(q, "}"), "{start"):
			started++
		case strings.Contains(q, `"sandbox-deploy"`) || strings.Contains(q, `"sandbox-promote"`):
			runs = append(runs, bindings(q))
		case strings.Contains(q, `"proxy"`):
			up = bindings(q)
		}
	}
	if started != 4 {
		t.Errorf("%d services started explicitly, want 4 (git, registry, mail, argocd)", started)
	}
	if len(runs) != 2 || len(up) != 4 {
		t.Fatalf("runs %v, up %v", runs, up)
	}
	for _, r := range runs {
		for alias, id := range up {
			if r[alias] != id {
				t.Errorf("%s: the runner binds another service than up forwards:\n%s\n%s", alias, r[alias], id)
			}
		}
	}
}

// The sandbox's services run the projects' own images, pinned and fully qualified, as those images
// run: Argo CD's three components by the commands and user of its image, after the cluster (kwok's
// cluster image with the sandbox's stages) and its bootstrap (Dagger starts a service's bindings,
// and waits for their ports, first); nothing is installed at run time; and with --runner-image the
// program is pulled, not compiled.
func TestSandboxServicesRunTheProjectsImages(t *testing.T) {
	for _, image := range []string{"", "ghcr.io/wanderlust/wanderlust-gitops:v1.2.0"} {
		session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
		c := useSession(t)
		sb := (&Wanderlust{RunnerImage: image}).Sandbox(c.Directory(), c.Directory(), "pw")
		for _, svc := range []*dagger.Service{sb.Argocd(), sb.Git(), sb.Mail(), sb.Registry()} {
			if _, err := svc.ID(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		all := session.All()
		allowed := map[string]bool{layout.KubeImage: true, layout.ArgoCDImage: true, layout.RedisImage: true, layout.MailpitImage: true,
			layout.RegistryImage: true, layout.RolloutsImage: true, runner.GoImage: true, image: image != ""}
		for _, m := range regexp.MustCompile(`from\(address:"([^"]+)"\)`).FindAllStringSubmatch(all, -1) {
			ref := m[1]
			host, rest, _ := strings.Cut(ref, "/")
			_, tag, hasTag := strings.Cut(rest, ":")
			if !strings.Contains(host, ".") || !hasTag || tag == "latest" || !allowed[ref] {
				t.Errorf("image %q: not a pinned, fully qualified image of the sandbox", ref)
			}
		}
		if strings.Contains(all, "apt-get") {
			t.Error("something is installed at run time")
		}
		if built := strings.Contains(all, `"go","build"`); built != (image == "") {
			t.Errorf("--runner-image %q: the program compiled = %v", image, built)
		}

		services := map[string]string{} // by what they run
		for _, q := range session.Queries() {
			if !strings.Contains(q, "asService") {
				continue
			}
			args := daggerfake.Calls(q, "asService")[0]
			name := regexp.MustCompile(`from\(address:"([^"]+)"\)`).FindStringSubmatch(q)[1]
			if m := regexp.MustCompile(`"(/usr/local/bin/[a-z-]+)"`).FindStringSubmatch(args); m != nil {
				name = m[1]
			}
			if strings.Contains(args, `"sandbox-bootstrap"`) {
				name = "bootstrap"
			}
			if strings.Contains(args, `"git"`) {
				name = "git"
			}
			services[name] = q
		}
		aliases := func(q string) []string {
			var out []string
			for _, b := range daggerfake.Calls(q, "withServiceBinding") {
				out = append(out, argValue(b, "alias"))
			}
			slices.Sort(out)
			return out
		}
		for _, tc := range []struct {
			name  string
			binds []string
		}{
			{"/usr/local/bin/argocd-server", []string{"argo-rollouts", "argocd-application-controller", "argocd-redis", "argocd-repo-server", "bootstrap", "kube"}},
			{"/usr/local/bin/argocd-application-controller", []string{"argocd-redis", "argocd-repo-server", "bootstrap", "kube"}},
			{"/usr/local/bin/argocd-repo-server", []string{"argocd-redis", "git"}},
		} {
			q, ok := services[tc.name]
			if !ok {
				t.Fatalf("no service runs %s: %v", tc.name, slices.Collect(maps.Keys(services)))
			}
			if got := aliases(q); !slices.Equal(got, tc.binds) {
				t.Errorf("%s binds %v, want %v", tc.name, got, tc.binds)
			}
			if !strings.Contains(q, `from(address:"`+layout.ArgoCDImage+`")`) || !daggerfake.HasCall(q, "withUser", `name:"999"`) ||
				!strings.Contains(daggerfake.Calls(q, "asService")[0], "useEntrypoint:true") {
				t.Errorf("%s: not Argo CD's image as its user 999 behind its entrypoint: %s", tc.name, q)
			}
			if !strings.Contains(q, `"KUBECONFIG"`) || !strings.Contains(q, `"ARGOCD_FAKE_IN_CLUSTER"`) || !strings.Contains(q, `owner:"999"`) ||
				!strings.Contains(q, `server: \"http://kube:8080\"`) {
				t.Errorf("%s: does not reach the cluster through its kubeconfig: %s", tc.name, q)
			}
		}
		// Argo Rollouts' controller: its image as its Dockerfile runs it (user 999, its entrypoint), the
		// cluster through its kubeconfig, started after the bootstrap that installs its CRDs, and
		// waited for on its health port.
		if q := services[layout.RolloutsImage]; !slices.Equal(aliases(q), []string{"bootstrap", "kube"}) || !daggerfake.HasCall(q, "withUser", `name:"999"`) ||
			!strings.Contains(q, `owner:"999"`) || !strings.Contains(q, `server: \"http://kube:8080\"`) ||
			!daggerfake.HasCall(q, "asService", `args:["--kubeconfig","/etc/argo-rollouts/kubeconfig","--leader-elect=false","--healthzPort","8080","--metricsPort","8090","--loglevel","warn"]`, "useEntrypoint:true") ||
			!daggerfake.HasCall(q, "withExposedPort", "port:8080") {
			t.Errorf("argo-rollouts: not its image, user, kubeconfig, bindings or health port: %s", q)
		}
		if q := services["bootstrap"]; !slices.Equal(aliases(q), []string{"kube"}) || !daggerfake.HasCall(q, "withExposedPort", "port:8081") {
			t.Errorf("bootstrap: binds %v, or answers on no port: %s", aliases(q), q)
		}
		if q := services[layout.KubeImage]; !daggerfake.HasCall(q, "asService", `args:["--config","/etc/wanderlust/kwok-stages.yaml"]`, "useEntrypoint:true") ||
			!strings.Contains(q, layout.NeverReady) {
			t.Errorf("kube: not kwok's cluster with the sandbox's stages: %s", q)
		}
		for img, ports := range map[string][]string{layout.MailpitImage: {"port:1025", "port:8025"}, layout.RegistryImage: {"port:5000"},
			layout.RedisImage: {"port:6379"}} {
			for _, p := range ports {
				if !daggerfake.HasCall(services[img], "withExposedPort", p) {
					t.Errorf("%s does not expose %s", img, p)
				}
			}
		}
		if q := services["git"]; !strings.Contains(q, `from(address:"`+runner.GoImage+`")`) || !strings.Contains(q, `path:"/usr/local/bin/wanderlust-gitops"`) {
			t.Errorf("git: not the program in an image that has git: %.400s", q)
		}
	}
}
