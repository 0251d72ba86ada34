package main

// The sandbox functions' bodies: the services and the runner from sandbox/recipe.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
)

func newSandbox(app, repo *dagger.Directory, password *dagger.Secret, goEnv []string) *Sandbox {
	if password == nil {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		password = dag.SetSecret("wanderlust-sandbox-"+record.NewRunID(), hex.EncodeToString(b))
	}
	return &Sandbox{App: app, Repo: repo, Password: password, GoEnv: goEnv}
}

func (s *Sandbox) secrets() recipe.Secrets {
	return recipe.Secrets{Git: s.Password, ArgoCD: s.Password}
}

// image is the services' and the runner's image (the Go settings were checked by check).
func (s *Sandbox) image() *dagger.Container {
	env, _ := runner.ParseGoEnv(s.GoEnv)
	return recipe.Image(dag, s.Repo, env)
}

// check refuses bad Go settings before anything is built.
func (s *Sandbox) check() error {
	_, err := runner.ParseGoEnv(s.GoEnv)
	return err
}

func (s *Sandbox) services() recipe.Services {
	img := s.image()
	git := recipe.Git(img, s.secrets())
	return recipe.Services{Git: git, Registry: recipe.Registry(img), Mail: recipe.Mail(img), ArgoCD: recipe.ArgoCD(img, git, s.secrets())}
}

func (s *Sandbox) runner() *dagger.Container {
	return recipe.Runner(s.image(), s.services(), s.secrets(), record.NewRunID())
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
	built, err := build.Both(ctx, dag, s.App, build.Options{SkipTests: skipTests})
	if err != nil {
		return "", err
	}
	out, err := recipe.Deploy(s.runner(), map[string]*dagger.Container{build.Backend: built.Backend, build.Frontend: built.Frontend}, env, version).Stdout(ctx)
	if err != nil {
		return "", execerr.Wrap("sandbox deploy", err)
	}
	return out + where, nil
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
	out, err := recipe.Promote(s.runner(), from, to).Stdout(ctx)
	if err != nil {
		return "", execerr.Wrap("sandbox promote", err)
	}
	return out + where, nil
}

func (s *Sandbox) up() *dagger.Service { return recipe.Up(s.image(), s.services(), s.secrets()) }

// where is printed after a sandbox run.
var where = strings.Join([]string{"", "---",
	"Sandbox: the images are in its registry (" + layout.RegistryHost + ":5000), the bump is in " + layout.RepoURL() + ", the report was mailed to its mail catcher.",
	"Pods are simulated by kwok: Healthy means Argo CD and Kubernetes accepted and rolled out the manifests, not that the images ran.",
	"It stopped with this call. To watch it: dagger call sandbox --password env:SANDBOX_PASSWORD up up   (Argo CD on http://localhost:8080, user admin)",
	"and, from another terminal, the same --password with deploy or promote.", ""}, "\n")
