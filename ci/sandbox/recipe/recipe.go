// Package recipe is the sandbox as Dagger services, on the projects' own images (sandbox/layout):
// kwok's all-in-one cluster, Argo CD's image as its three components, redis, Mailpit, the CNCF
// registry; the git remote, the cluster's bootstrap and the runner are the GitOps program (built
// from source or pulled, as for deploy). Everything the program does is tested on the host; here are
// only the recipes.
package recipe

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/sandbox/layout"
)

// GitImage runs the git remote: the GitOps program serves `git http-backend`, and Go's image has git
// (no package installed at run time). The program is static: it runs in any image.
const GitImage = runner.GoImage

// Login is the sandbox's password of the git remote and of Argo CD's admin. It is plain on purpose:
// the sandbox is local and throw-away, and Dagger scrubs every secret a container receives from its
// output — a secret login could never be printed for the user to log in with.
type Login string

// withLogin sets the login's variables (what the GitOps program's sandbox subcommands read).
func withLogin(ctr *dagger.Container, l Login) *dagger.Container {
	return ctr.WithEnvVariable("SANDBOX_GIT_PASSWORD", string(l)).WithEnvVariable("SANDBOX_ARGOCD_PASSWORD", string(l))
}

// Sandbox is what the services are made of: the GitOps program's container (runner.Build or
// runner.Pull: the program at runner.Bin), this project's kubernetes/ tree, and the login.
type Sandbox struct {
	Program    *dagger.Container
	Kubernetes *dagger.Directory
	Login      Login
}

// program is the GitOps program's container with the kubernetes/ tree and the login.
func (s Sandbox) program() *dagger.Container {
	return withLogin(s.Program.WithDirectory(layout.ImageKubernetes, s.Kubernetes), s.Login)
}

// run is a service running the program's subcommand (by its path: the published image sets no PATH).
func run(ctr *dagger.Container, args ...string) *dagger.Service {
	return ctr.AsService(dagger.ContainerAsServiceOpts{Args: append([]string{runner.Bin}, args...)})
}

// Services are the sandbox's services; ArgoCD (the API server) brings up the whole Argo CD stack.
type Services struct {
	Git, Registry, Mail, ArgoCD *dagger.Service
}

// Services builds every service from its image.
func (s Sandbox) Services(c *dagger.Client) Services {
	git := s.Git(c)
	return Services{Git: git, Registry: Registry(c), Mail: Mail(c), ArgoCD: s.ArgoCD(c, git)}
}

// Git is the GitOps repository's remote, seeded with kubernetes/.
func (s Sandbox) Git(c *dagger.Client) *dagger.Service {
	ctr := c.Container().From(GitImage).
		WithFile(runner.Bin, s.Program.File(runner.Bin), dagger.ContainerWithFileOpts{Permissions: 0o755}).
		WithDirectory(layout.ImageKubernetes, s.Kubernetes).
		WithExposedPort(layout.GitPort)
	return run(withLogin(ctr, s.Login), "git")
}

// Registry is the CNCF distribution registry, plain HTTP on RegistryPort (its image's own command).
func Registry(c *dagger.Client) *dagger.Service {
	return c.Container().From(layout.RegistryImage).WithExposedPort(layout.RegistryPort).AsService()
}

// Mail is Mailpit: SMTP on SMTPPort (no login: the engine's network only), web UI and API on
// MailHTTPPort (its image's own command).
func Mail(c *dagger.Client) *dagger.Service {
	return c.Container().From(layout.MailpitImage).
		WithExposedPort(layout.SMTPPort).WithExposedPort(layout.MailHTTPPort).
		AsService()
}

// Kube is kwok's cluster, with the sandbox's stages (layout.KwokStages): its entrypoint runs
// `kwokctl create cluster` with the arguments given, then serves the API on KubePort.
func Kube(c *dagger.Client) *dagger.Service {
	const stages = "/etc/wanderlust/kwok-stages.yaml"
	return c.Container().From(layout.KubeImage).
		WithNewFile(stages, layout.KwokStages).
		WithExposedPort(layout.KubePort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"--config", stages}, UseEntrypoint: true})
}

// Redis is Argo CD's cache, as Argo CD's install runs it (no persistence).
func Redis(c *dagger.Client) *dagger.Service {
	return c.Container().From(layout.RedisImage).WithExposedPort(layout.RedisPort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"redis-server", "--save", "", "--appendonly", "no"}, UseEntrypoint: true})
}

// Bootstrap prepares the cluster for Argo CD (the program's sandbox-bootstrap: CRDs, configuration,
// the admin login, the repository, the applications) and answers on HealthPort once done.
func (s Sandbox) Bootstrap(kube *dagger.Service) *dagger.Service {
	return run(s.program().WithServiceBinding(layout.KubeHost, kube).WithExposedPort(layout.HealthPort), "sandbox-bootstrap")
}

// argo is a container of Argo CD's image as its Dockerfile runs it (user 999, tini), with the
// cluster's kubeconfig and the environment of a component outside a pod.
func argo(c *dagger.Client) *dagger.Container {
	ctr := c.Container().From(layout.ArgoCDImage).
		WithNewFile(layout.ArgoCDKubeconfig, layout.Kubeconfig(fmt.Sprintf("http://%s:%d", layout.KubeHost, layout.KubePort), ""),
			dagger.ContainerWithNewFileOpts{Owner: layout.ArgoCDUser}).
		WithUser(layout.ArgoCDUser)
	for _, kv := range layout.ArgoCDEnv(layout.ArgoCDKubeconfig) {
		k, v, _ := strings.Cut(kv, "=")
		ctr = ctr.WithEnvVariable(k, v)
	}
	return ctr
}

// metricsPort is the repo-server's and the API server's metrics port (each in its own container).
const metricsPort = 8083

// argoArgs are where each component finds the others in the sandbox.
var argoArgs = layout.ArgoCD{Redis: fmt.Sprintf("%s:%d", layout.RedisHost, layout.RedisPort),
	RepoServer: fmt.Sprintf("%s:%d", layout.RepoServerHost, layout.RepoServerPort)}

// component runs one of Argo CD's components by the command its image names it (its install's
// `args: [/usr/local/bin/argocd-server, …]`, behind the image's tini entrypoint); Dagger waits for
// port: the component's own, or, for the controller, which has none, its metrics port.
func component(ctr *dagger.Container, name string, port, metrics int) *dagger.Service {
	a := argoArgs
	a.Port, a.MetricsPort = port, metrics
	return ctr.WithExposedPort(port).
		AsService(dagger.ContainerAsServiceOpts{Args: append([]string{"/usr/local/bin/" + name}, a.Args(name)...), UseEntrypoint: true})
}

// Rollouts is the Argo Rollouts controller from its image as its Dockerfile runs it (user 999, the
// controller as entrypoint), with the cluster's kubeconfig; bound to the cluster and its bootstrap
// (which installs its CRDs first). Dagger waits for its health port.
func Rollouts(c *dagger.Client, kube, boot *dagger.Service) *dagger.Service {
	return c.Container().From(layout.RolloutsImage).
		WithNewFile(layout.RolloutsKubeconfig, layout.Kubeconfig(fmt.Sprintf("http://%s:%d", layout.KubeHost, layout.KubePort), ""),
			dagger.ContainerWithNewFileOpts{Owner: layout.RolloutsUser}).
		WithUser(layout.RolloutsUser).
		WithServiceBinding(layout.KubeHost, kube).WithServiceBinding(layout.BootstrapHost, boot).
		WithExposedPort(layout.RolloutsPort).
		AsService(dagger.ContainerAsServiceOpts{Args: layout.RolloutsArgs(layout.RolloutsKubeconfig, layout.RolloutsPort, layout.RolloutsMetricsPort), UseEntrypoint: true})
}

// ArgoCD is Argo CD's API server (API and UI on ArgoCDPort, admin's password the login), bound to
// the repo-server, the application controller, the Argo Rollouts controller, redis, the cluster and
// its bootstrap, so that binding it starts them all, in order: the cluster, its bootstrap, then Argo
// CD and Argo Rollouts.
func (s Sandbox) ArgoCD(c *dagger.Client, git *dagger.Service) *dagger.Service {
	kube := Kube(c)
	redis := Redis(c)
	boot := s.Bootstrap(kube)
	repo := component(argo(c).WithServiceBinding(layout.RedisHost, redis).WithServiceBinding(layout.GitHost, git),
		"argocd-repo-server", layout.RepoServerPort, metricsPort)
	withStack := func(ctr *dagger.Container) *dagger.Container {
		return ctr.WithServiceBinding(layout.KubeHost, kube).WithServiceBinding(layout.BootstrapHost, boot).
			WithServiceBinding(layout.RedisHost, redis).WithServiceBinding(layout.RepoServerHost, repo)
	}
	controller := component(withStack(argo(c)), "argocd-application-controller", layout.ControllerPort, layout.ControllerPort)
	return component(withStack(argo(c)).WithServiceBinding(layout.ControllerHost, controller).
		WithServiceBinding(layout.RolloutsHost, Rollouts(c, kube, boot)), "argocd-server", layout.ArgoCDPort, metricsPort)
}

// Runner is the container in which the GitOps program runs the pipeline's deploy or promote against
// the services, bound under their aliases; run names the run so that no result is reused from the
// engine's cache.
func (s Sandbox) Runner(svc Services, run string) *dagger.Container {
	return bound(s.program(), svc).WithEnvVariable("SANDBOX_RUN", run)
}

// bound is ctr with the four services bound under their aliases.
func bound(ctr *dagger.Container, svc Services) *dagger.Container {
	return ctr.WithServiceBinding(layout.GitHost, svc.Git).
		WithServiceBinding(layout.RegistryHost, svc.Registry).
		WithServiceBinding(layout.MailHost, svc.Mail).
		WithServiceBinding(layout.ArgoCDHost, svc.ArgoCD)
}

// Deploy runs a deploy of the built images to env in the runner and returns the runner (its stdout
// is the run report, whatever the exit code).
// reportSoFar is the run's report as the module made it (its build stages), JSON; "" for none.
func Deploy(runnerCtr *dagger.Container, images map[string]*dagger.Container, env, version, reportSoFar string) *dagger.Container {
	args := []string{runner.Bin, "sandbox-deploy", "--env", env, "--version", version}
	for _, n := range slices.Sorted(maps.Keys(images)) {
		p := "/images/" + n + ".tar"
		runnerCtr = runnerCtr.WithMountedFile(p, images[n].AsTarball())
		args = append(args, "--image", n+"="+p)
	}
	if reportSoFar != "" {
		args = append(args, "--report", reportSoFar)
	}
	// Any exit code: a failed deployment's report is its stdout (execerr.Output).
	return runnerCtr.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
}

// Promote runs a promotion from → to in the runner.
func Promote(runnerCtr *dagger.Container, from, to string) *dagger.Container {
	return runnerCtr.WithExec([]string{runner.Bin, "sandbox-promote", "--from", from, "--to", to}, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
}

// Ports are the host ports of Up: Argo CD's API/UI, the git remote, the registry, Mailpit's UI and SMTP.
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
func (s Sandbox) Up(svc Services) *dagger.Service {
	ctr := bound(s.program(), svc)
	args := []string{"proxy"}
	for _, p := range Ports {
		ctr = ctr.WithExposedPort(p.Port)
		args = append(args, "--forward", fmt.Sprintf("%d=%s", p.Port, p.Target))
	}
	return run(ctr, args...)
}
