// Command wanderlust-gitops is the pipeline's GitOps half — everything that talks to Argo CD — as one
// program that the Dagger module runs in a container (a Go module of its own, so that Argo CD's and
// Kubernetes' packages stay out of the module's Go graph), and the sandbox's services. Secrets come
// from the environment (Dagger secret variables), never flags.
//
//	wanderlust-gitops deploy|promote|sync|canary --request JSON   the module's stages (ci/gitops: the request, and
//	                                                        the result as JSON on stdout; exit 1: a failed run)
//	wanderlust-gitops sandbox-bootstrap --kube URL --apps DIR --repo-url URL   (SANDBOX_ARGOCD_PASSWORD, SANDBOX_GIT_PASSWORD)
//	wanderlust-gitops git      --root DIR --kubernetes DIR                      (SANDBOX_GIT_PASSWORD)
//	wanderlust-gitops sandbox-deploy   --env dev --version V --image backend=/images/backend.tar …  (SANDBOX_ARGOCD_PASSWORD, SANDBOX_GIT_PASSWORD)
//	wanderlust-gitops sandbox-promote  --from dev --to staging                                      (same)
//	wanderlust-gitops proxy    --forward 8080=argocd:8080 …  (what `up` puts on the host; prints where to look)
//
// The sandbox's other services are the projects' own images (sandbox/layout); sandbox-bootstrap
// prepares their cluster for Argo CD and opens sandbox.HealthPort once done. Spans go where
// OTEL_EXPORTER_OTLP_* say, under TRACEPARENT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"wanderlust.dev/pipeline/ci/cmd/gitops/runner"
	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/sandbox"
	"wanderlust.dev/pipeline/ci/stages/report"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: "+gitops.Program+" deploy|promote|sync|canary|sandbox-bootstrap|git|sandbox-deploy|sandbox-promote|proxy [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, flush := tracing(ctx, os.Getenv)
	err := run(ctx, os.Args[1], os.Args[2:])
	flush()
	stop()
	switch {
	case errors.Is(err, errRunFailed):
		os.Exit(1) // the result, with the error and the report, is on stdout
	case err != nil:
		fmt.Fprintln(os.Stderr, gitops.Program+" "+os.Args[1]+": "+err.Error())
		os.Exit(2)
	}
}

// images is a repeatable name=path flag.
type images map[string]string

func (i images) String() string { return fmt.Sprint(map[string]string(i)) }
func (i images) Set(s string) error {
	n, p, ok := strings.Cut(s, "=")
	if !ok || n == "" || p == "" {
		return fmt.Errorf("want name=path, got %q", s)
	}
	i[n] = p
	return nil
}

func run(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	host := fs.String("host", "0.0.0.0", "address the services listen on")
	ports := func(p int) string { return fmt.Sprintf("%s:%d", *host, p) }
	gitUser := fs.String("git-user", sandbox.GitUser, "user of the git remote")
	gitPassword, argoPassword := os.Getenv("SANDBOX_GIT_PASSWORD"), os.Getenv("SANDBOX_ARGOCD_PASSWORD")
	switch cmd {
	case gitops.CmdDeploy, gitops.CmdPromote, gitops.CmdSync, gitops.CmdCanary, gitops.CmdAttest, gitops.CmdVerifyEvidence:
		request := fs.String("request", "", "the request, JSON (ci/gitops)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serve(ctx, cmd, *request, os.Getenv, os.Stdout)
	case "sandbox-bootstrap":
		kube := fs.String("kube", fmt.Sprintf("http://%s:%d", sandbox.KubeHost, sandbox.KubePort), "the cluster's API (kubectl proxy: no login)")
		apps := fs.String("apps", sandbox.ImageKubernetes+"/argocd", "directory of the Application manifests")
		repoURL := fs.String("repo-url", sandbox.RepoURL(), "URL of the GitOps repository the applications track")
		health := fs.Int("health-port", sandbox.HealthPort, "port that answers once the bootstrap is done")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return sandbox.ServeBootstrap(ctx, sandbox.BootstrapServer{Kube: *kube, Health: ports(*health),
			BootstrapConfig: sandbox.BootstrapConfig{AdminPassword: argoPassword, RepoURL: *repoURL, GitUser: *gitUser, GitPassword: gitPassword, Apps: *apps}}, logf)
	case "git":
		root := fs.String("root", sandbox.ImageData+"/git", "directory of the repositories")
		kube := fs.String("kubernetes", sandbox.ImageKubernetes, "the kubernetes/ tree to seed the repository with")
		port := fs.Int("port", sandbox.GitPort, "port")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return sandbox.ServeGit(ctx, sandbox.GitConfig{Root: *root, Kubernetes: *kube, User: *gitUser, Password: gitPassword, Addr: ports(*port)})
	case "proxy":
		fwd := forwards{}
		fs.Var(fwd, "forward", "port=host:port, repeatable")
		if err := fs.Parse(args); err != nil {
			return err
		}
		for _, line := range sandbox.Where(fwd, gitPassword, argoPassword) {
			fmt.Println(line)
		}
		return sandbox.Forward(ctx, *host, fwd)
	case "sandbox-deploy", "sandbox-promote":
		o := runner.Options{Images: images{}, GitPassword: gitPassword, ArgoPassword: argoPassword, Log: logf}
		fs.StringVar(&o.Registry, "registry", fmt.Sprintf("%s:%d", sandbox.RegistryHost, sandbox.RegistryPort), "registry host:port")
		fs.StringVar(&o.Repo, "repo", sandbox.RepoURL(), "GitOps repository URL")
		fs.StringVar(&o.ArgoCD, "argocd", fmt.Sprintf("%s:%d", sandbox.ArgoCDHost, sandbox.ArgoCDPort), "Argo CD host:port")
		fs.StringVar(&o.SMTP, "smtp", fmt.Sprintf("%s:%d", sandbox.MailHost, sandbox.SMTPPort), "Mailpit's SMTP, host:port")
		mailTo := fs.String("mail-to", "team@wanderlust.invalid", "recipients, comma-separated")
		fs.StringVar(&o.Version, "version", "", "image tag")
		fs.Var(images(o.Images), "image", "name=tarball, repeatable (deploy)")
		timeout := fs.Duration("timeout", 5*time.Minute, "wait for Synced and Healthy")
		env := fs.String("env", "dev", "environment (deploy)")
		from := fs.String("from", "dev", "source environment (promote)")
		to := fs.String("to", "staging", "target environment (promote)")
		reportSoFar := fs.String("report", "", "the run's report so far, JSON (the module's build stages)")
		mailAPI := fs.String("mail-api", fmt.Sprintf("%s:%d", sandbox.MailHost, sandbox.MailHTTPPort), "Mailpit's web UI and API, host:port")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *reportSoFar != "" {
			var err error
			if o.Report, err = report.Parse([]byte(*reportSoFar)); err != nil {
				return fmt.Errorf("--report: %w", err)
			}
		}
		o.GitUser, o.MailTo, o.Timeout = *gitUser, strings.Split(*mailTo, ","), *timeout
		var rep *report.Run
		var err error
		if cmd == "sandbox-deploy" {
			rep, err = runner.Deploy(ctx, o, *env)
		} else {
			rep, err = runner.Promote(ctx, o, *from, *to)
		}
		if rep != nil {
			fmt.Println(rep.Markdown())
		}
		// What Mailpit holds, asked of it (not "mailed": the report says whether it was sent).
		if n, merr := runner.MailCount(ctx, *mailAPI); merr == nil {
			fmt.Printf("Mailpit: %d message(s) (web UI: port %d)\n", n, sandbox.MailHTTPPort)
		} else {
			fmt.Printf("Mailpit: not reachable (%v)\n", merr)
		}
		return err
	}
	return fmt.Errorf("unknown subcommand")
}

// forwards is a repeatable port=host:port flag.
type forwards map[int]string

func (f forwards) String() string { return fmt.Sprint(map[int]string(f)) }
func (f forwards) Set(s string) error {
	p, target, ok := strings.Cut(s, "=")
	var port int
	if _, err := fmt.Sscan(p, &port); !ok || err != nil || !strings.Contains(target, ":") {
		return fmt.Errorf("want port=host:port, got %q", s)
	}
	f[port] = target
	return nil
}

func logf(s string) { fmt.Fprintln(os.Stderr, time.Now().UTC().Format("15:04:05 ")+s) }
