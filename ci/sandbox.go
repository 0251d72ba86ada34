package main

// The sandbox functions' bodies: the services and the runner from sandbox/recipe.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"wanderlust.dev/pipeline/ci/execerr"
	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/sandbox/layout"
	"wanderlust.dev/pipeline/ci/sandbox/recipe"
	"wanderlust.dev/pipeline/ci/stages/build"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/record"
	"wanderlust.dev/pipeline/ci/stages/report"
)

func newSandbox(app, project *dagger.Directory, password, runnerImage string, goEnv []string) *Sandbox {
	if password == "" {
		b := make([]byte, 9)
		_, _ = rand.Read(b)
		password = hex.EncodeToString(b)
	}
	return &Sandbox{App: app, Repo: project, Login: password, RunnerImage: runnerImage, GoEnv: goEnv}
}

// check refuses bad Go settings before anything is built.
func (s *Sandbox) check() error {
	_, err := runner.ParseGoEnv(s.GoEnv)
	return err
}

// recipe is the sandbox's ingredients: the GitOps program (--runner-image, or built from this
// module's source, as for deploy), kubernetes/ and the login. The Go settings were checked by check.
func (s *Sandbox) recipe() recipe.Sandbox {
	prog, _ := program(s.RunnerImage, s.GoEnv)
	return recipe.Sandbox{Program: prog, Kubernetes: s.Repo.Directory("kubernetes"), Login: recipe.Login(s.Login)}
}

func (s *Sandbox) services() recipe.Services { return s.recipe().Services(dag) }

func (s *Sandbox) runner() *dagger.Container {
	return s.recipe().Runner(s.services(), record.NewRunID())
}

func (s *Sandbox) deploy(ctx context.Context, env, version string, skipTests bool) (string, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	if err := bump.CheckEnv(env); err != nil {
		return "", err
	}
	if _, err := manifest.ParseUpdate("wanderlust-backend=" + version); err != nil {
		return "", fmt.Errorf("--version: %w", err)
	}
	// One report for the whole run: the build here, the rest in the runner.
	rep := report.New("Wanderlust deploy (sandbox)", env)
	sctx, end := rep.Start(ctx, "build")
	built, err := build.Both(sctx, dag, s.App, build.Options{SkipTests: skipTests})
	out := map[string]string{"tests": "ran"}
	if skipTests {
		out["tests"] = "skipped (--skip-tests)"
	}
	end(out, err)
	if err != nil {
		rep.Finish(err)
		return "", fmt.Errorf("%w\n\n%s", err, rep.Markdown())
	}
	stdout, err := execerr.Output(ctx, "sandbox deploy", recipe.Deploy(s.runner(),
		map[string]*dagger.Container{build.Backend: built.Backend, build.Frontend: built.Frontend}, env, version, string(rep.JSON())))
	return stdout, err
}

func (s *Sandbox) promote(ctx context.Context, from, to string) (string, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	for _, env := range []string{from, to} {
		if err := bump.CheckEnv(env); err != nil {
			return "", err
		}
	}
	return execerr.Output(ctx, "sandbox promote", recipe.Promote(s.runner(), from, to))
}

// up is the forwarding service. With deploy, the app is first deployed to dev (and promoted to
// promoteTo) in this session, with the four services started explicitly: Dagger keeps a started
// service running until the session ends, and the forwarding service binds the same definitions, so
// the browser shows what was deployed. The reports go to the call's log.
func (s *Sandbox) up(ctx context.Context, deploy bool, version, promoteTo string) (*dagger.Service, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if promoteTo != "" && !deploy {
		return nil, errors.New("--promote-to needs --deploy: a fresh sandbox has nothing deployed to promote")
	}
	if deploy {
		if promoteTo != "" {
			if err := bump.CheckEnv(promoteTo); err != nil {
				return nil, err
			}
		}
		svc := s.services()
		for _, sv := range []*dagger.Service{svc.Git, svc.Registry, svc.Mail, svc.ArgoCD} {
			if _, err := sv.Start(ctx); err != nil {
				return nil, execerr.Wrap("sandbox up: start a service", err)
			}
		}
		out, err := s.deploy(ctx, "dev", version, false)
		logf(out)
		if err != nil {
			return nil, err
		}
		if promoteTo != "" {
			out, err := s.promote(ctx, "dev", promoteTo)
			logf(out)
			if err != nil {
				return nil, err
			}
		}
	}
	logf(fmt.Sprintf("Sandbox login: user admin (Argo CD) and %s (git), password %s", layout.GitUser, s.Login))
	return s.recipe().Up(s.services()), nil
}

// where is printed after a sandbox run.
var where = strings.Join([]string{"", "---",
	"Where it was: the images in the sandbox's registry (" + layout.RegistryHost + ":5000), the bump in " + layout.RepoURL() + ", the report in its Mailpit (count above).",
	"Pods are simulated by kwok: Healthy means Argo CD and Kubernetes accepted and rolled out the manifests, not that the images ran.",
	"This sandbox stopped with the call (each dagger call has its own). Next, try:",
	"  dagger call sandbox deploy --version never-ready              a rollout that fails: rolled back in git, Healthy again, mailed",
	"  dagger call sandbox up --deploy --promote-to staging up        deploy, promote, and keep it all on your host: Argo CD http://localhost:8080,",
	"                                                                  git :3000, registry :5000, Mailpit http://localhost:8025 (the login is printed)", ""}, "\n")

// withWhere adds where to look and what to try next to a sandbox run's output or error.
func withWhere(out string, err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("%w\n%s", err, where)
	}
	return out + where, nil
}
