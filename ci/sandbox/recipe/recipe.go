// Package recipe is the sandbox as Dagger containers and services: a builder that compiles the Argo
// CD stack's binaries (hack/e2e/build.sh, the harness's own script and versions) and the GitOps program in a
// pinned Go image with module and build caches, a small runtime image, one service per component
// (git, registry, mail, Argo CD) and the runner that deploys against them through service bindings.
// Everything the services do is the GitOps program, tested on the host; here are only the recipes.
package recipe

import (
	"fmt"
	"maps"
	"slices"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/sandbox/layout"
)

// program is the GitOps program: every service's and the runner's entrypoint.
const program = gitops.Program

// Pinned images.
const (
	// GoImage builds the binaries (bash for build.sh; the binaries are static: CGO_ENABLED=0).
	GoImage = runner.GoImage
	// RuntimeImage runs them, with git and redis-server from Debian's packages.
	RuntimeImage = "docker.io/library/debian:12.12-slim"
)

// Where the runtime image keeps things: the GitOps program's defaults.
const (
	binDir       = layout.ImageBin
	manifestsDir = layout.ImageManifests
	kubeDir      = layout.ImageKubernetes
	dataDir      = layout.ImageData
)

// Login is the sandbox's password of the git remote and of Argo CD's admin. It is plain on purpose:
// the sandbox is local and throw-away, and Dagger scrubs every secret a container receives from its
// output — a secret login could never be printed for the user to log in with.
type Login string

// withLogin sets the login's variables (what the GitOps program's sandbox subcommands read).
func withLogin(ctr *dagger.Container, l Login) *dagger.Container {
	return ctr.WithEnvVariable("SANDBOX_GIT_PASSWORD", string(l)).WithEnvVariable("SANDBOX_ARGOCD_PASSWORD", string(l))
}

// ciIncludes is what of ci/ the builder needs for the GitOps program (not the generated Dagger code).
var ciIncludes = []string{"go.mod", "go.sum", "cmd/**", "gitops/**", "sandbox/**", "stages/**"}

// Builder compiles the stack's binaries and the GitOps program (cmd/gitops, a Go module of its own)
// into /out: /out/bin (the harness's binaries), /out/wanderlust-gitops and /out/argo-cd/manifests (the argo-cd module's CRDs and install.yaml).
// env are the caller's Go settings (a module mirror …).
func Builder(c *dagger.Client, src *dagger.Directory, env runner.GoEnv) *dagger.Container {
	return env.Apply(c.Container().From(GoImage)).
		WithMountedCache("/go/pkg/mod", c.CacheVolume("wanderlust-sandbox-gomod")).
		WithMountedCache("/root/.cache/go-build", c.CacheVolume("wanderlust-sandbox-gobuild")).
		WithEnvVariable("CGO_ENABLED", "0").
		WithDirectory("/out/bin", c.Directory()).
		WithDirectory("/out/argo-cd", c.Directory()).
		WithDirectory("/src/hack/e2e", src.Directory("hack/e2e")).
		WithDirectory("/src/ci", src.Directory("ci"), dagger.ContainerWithDirectoryOpts{Include: ciIncludes}).
		WithEnvVariable("WANDERLUST_E2E_BIN", "/out/bin").
		WithExec([]string{"bash", "/src/hack/e2e/build.sh"}).
		WithWorkdir("/src/ci/cmd/gitops").
		WithExec([]string{"go", "build", "-ldflags", "-s -w", "-o", "/out/" + program, "."}).
		WithExec([]string{"sh", "-c", `cp -r "$(go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v2)/manifests/." /out/argo-cd/manifests`})
}

// Image is the runtime image of every service and of the runner.
func Image(c *dagger.Client, src *dagger.Directory, env runner.GoEnv) *dagger.Container {
	out := Builder(c, src, env).Directory("/out")
	return c.Container().From(RuntimeImage).
		WithExec([]string{"apt-get", "update", "-q"}).
		WithExec([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends", "git", "redis-server", "ca-certificates"}).
		WithDirectory(binDir, out.Directory("bin")).
		WithDirectory(manifestsDir, out.Directory("argo-cd/manifests")).
		WithFile(runner.Bin, out.File(program)).
		WithDirectory(kubeDir, src.Directory("kubernetes")).
		WithDirectory(dataDir, c.Directory())
}

// Git is the GitOps repository's remote, seeded with kubernetes/.
func Git(img *dagger.Container, l Login) *dagger.Service {
	return withLogin(img, l).
		WithExposedPort(layout.GitPort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{program, "git"}})
}

// Registry is the in-engine OCI registry.
func Registry(img *dagger.Container) *dagger.Service {
	return img.WithExposedPort(layout.RegistryPort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{program, "registry"}})
}

// Mail is the mail catcher: SMTP and the HTTP listing of the messages.
func Mail(img *dagger.Container) *dagger.Service {
	return img.WithExposedPort(layout.SMTPPort).WithExposedPort(layout.MailHTTPPort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{program, "mail"}})
}

// ArgoCD is the Argo CD stack with the applications of kubernetes/argocd tracking the git
// service. Its health port opens only once the applications exist, and Dagger waits for every
// exposed port: a client of the service starts when the sandbox is ready.
func ArgoCD(img *dagger.Container, git *dagger.Service, l Login) *dagger.Service {
	return withLogin(img.WithServiceBinding(layout.GitHost, git), l).
		WithExposedPort(layout.ArgoCDPort).WithExposedPort(layout.HealthPort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{program, "argocd", "--repo-url", layout.RepoURL(), "--apps", kubeDir + "/argocd"}})
}

// Services are the sandbox's four services.
type Services struct {
	Git, Registry, Mail, ArgoCD *dagger.Service
}

// Runner is the container in which the GitOps program runs the pipeline's deploy or promote against the
// services, bound under their aliases; run names the run so that no result is reused from the
// engine's cache.
func Runner(img *dagger.Container, svc Services, l Login, run string) *dagger.Container {
	return bound(img, svc, l).WithEnvVariable("SANDBOX_RUN", run)
}

// bound is img with the four services bound under their aliases, and the login.
func bound(img *dagger.Container, svc Services, l Login) *dagger.Container {
	return withLogin(img.WithServiceBinding(layout.GitHost, svc.Git).
		WithServiceBinding(layout.RegistryHost, svc.Registry).
		WithServiceBinding(layout.MailHost, svc.Mail).
		WithServiceBinding(layout.ArgoCDHost, svc.ArgoCD), l)
}

// Deploy runs a deploy of the built images to env in the runner and returns the runner (its stdout
// is the run report, whatever the exit code).
// reportSoFar is the run's report as the module made it (its build stages), JSON; "" for none.
func Deploy(runner *dagger.Container, images map[string]*dagger.Container, env, version, reportSoFar string) *dagger.Container {
	args := []string{program, "sandbox-deploy", "--env", env, "--version", version}
	for _, n := range slices.Sorted(maps.Keys(images)) {
		p := "/images/" + n + ".tar"
		runner = runner.WithMountedFile(p, images[n].AsTarball())
		args = append(args, "--image", n+"="+p)
	}
	if reportSoFar != "" {
		args = append(args, "--report", reportSoFar)
	}
	// Any exit code: a failed deployment's report is its stdout (execerr.Output).
	return runner.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
}

// Promote runs a promotion from → to in the runner.
func Promote(runner *dagger.Container, from, to string) *dagger.Container {
	return runner.WithExec([]string{program, "sandbox-promote", "--from", from, "--to", to}, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
}

// Ports are the host ports of Up: Argo CD's API/UI, the git remote, the registry, the mail listing.
var Ports = []struct {
	Port   int
	Target string
}{
	{layout.ArgoCDPort, fmt.Sprintf("%s:%d", layout.ArgoCDHost, layout.ArgoCDPort)},
	{3000, fmt.Sprintf("%s:%d", layout.GitHost, layout.GitPort)},
	{layout.RegistryPort, fmt.Sprintf("%s:%d", layout.RegistryHost, layout.RegistryPort)},
	{layout.MailHTTPPort, fmt.Sprintf("%s:%d", layout.MailHost, layout.MailHTTPPort)},
	{layout.SMTPPort, fmt.Sprintf("%s:%d", layout.MailHost, layout.SMTPPort)},
}

// Up is one service forwarding Ports to the four services (the GitOps program's proxy), so that
// `dagger call sandbox up up` puts them all on the host; it prints where to look, with the login.
func Up(img *dagger.Container, svc Services, l Login) *dagger.Service {
	ctr := bound(img, svc, l)
	args := []string{program, "proxy"}
	for _, p := range Ports {
		ctr = ctr.WithExposedPort(p.Port)
		args = append(args, "--forward", fmt.Sprintf("%d=%s", p.Port, p.Target))
	}
	return ctr.AsService(dagger.ContainerAsServiceOpts{Args: args})
}
