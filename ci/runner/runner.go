// Package runner is the GitOps program (ci/cmd/gitops) as Dagger containers: built from the module's
// own source in a pinned Go image with module and build cache volumes — copying only the packages it
// compiles, so that an edit elsewhere in ci/ reuses the build — or pulled from a published image
// (--runner-image); and one request run in it, its result read whatever the exit code.
package runner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"wanderlust.dev/pipeline/ci/execerr"
	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/internal/dagger"
)

// GoImage builds the program (and the sandbox's binaries).
const GoImage = "docker.io/library/golang:1.26.8-bookworm"

// Bin is where the program is in its image.
const Bin = "/usr/local/bin/" + gitops.Program

// Packages are the directories of ci/ whose packages the program compiles: its own module
// (cmd/gitops) and what it imports from the module beside. TestPackagesAreWhatTheProgramImports
// checks the list against `go list -deps`.
var Packages = []string{
	"cmd/gitops", "cmd/gitops/runner", "cmd/gitops/stages/argocd", "cmd/gitops/stages/deploy", "cmd/gitops/stages/keyless",
	"gitops", "sandbox", "sandbox/layout",
	"stages/bump", "stages/evidence", "stages/git", "stages/intent", "stages/manifest", "stages/notify",
	"stages/probe", "stages/record", "stages/registry", "stages/render", "stages/report",
	"stages/scan/findings", "stages/telemetry",
}

// Embeds are the files of those packages that the program embeds (//go:embed): copied with them.
// TestPackagesAreWhatTheProgramImports checks them too.
var Embeds = []string{"sandbox/argocd-bootstrap.yaml", "sandbox/rollouts-crds.yaml"}

// moduleFiles are the two modules' files the build reads.
var moduleFiles = []string{"go.mod", "go.sum", "cmd/gitops/go.mod", "cmd/gitops/go.sum"}

// Source is the part of ci/ the program builds from: the module files, its packages' Go files (no
// tests) and what they embed.
func Source(c *dagger.Client, ci *dagger.Directory) *dagger.Directory {
	d := c.Directory()
	for _, f := range append(slices.Clone(moduleFiles), Embeds...) {
		d = d.WithFile(f, ci.File(f))
	}
	for _, p := range Packages {
		d = d.WithDirectory(p, ci.Directory(p), dagger.DirectoryWithDirectoryOpts{Include: []string{"*.go"}, Exclude: []string{"*_test.go"}})
	}
	return d
}

// GoEnv are the Go settings of the caller that the build honours (a private module mirror, a proxy
// that checks sums elsewhere …): name → value, set only when given.
type GoEnv map[string]string

// GoEnvNames are the variables GoEnv may hold.
var GoEnvNames = []string{"GOPROXY", "GONOSUMDB", "GOPRIVATE", "GOFLAGS", "GONOPROXY", "GOSUMDB"}

// ParseGoEnv reads NAME=value settings (--go-env). Only GoEnvNames are taken, and no value may carry
// credentials (a proxy URL with user:password@): such a setting would sit in the build's plain
// environment and plan.
func ParseGoEnv(settings []string) (GoEnv, error) {
	env := GoEnv{}
	for _, kv := range settings {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !slices.Contains(GoEnvNames, k) {
			return nil, fmt.Errorf("--go-env %q: want NAME=value with NAME one of %s", redactSetting(kv), strings.Join(GoEnvNames, ", "))
		}
		if strings.Contains(v, "@") && strings.Contains(v, "://") {
			return nil, fmt.Errorf("--go-env %s: the value carries credentials (user@host); give the mirror without them (a proxy that needs a login is not supported here)", k)
		}
		env[k] = v
	}
	return env, nil
}

// Apply sets the settings on a Go build container, in a stable order (the plan, and so the build's
// cache key, does not depend on map order); names other than GoEnvNames and empty values are left out.
func (env GoEnv) Apply(ctr *dagger.Container) *dagger.Container {
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if slices.Contains(GoEnvNames, k) && env[k] != "" {
			ctr = ctr.WithEnvVariable(k, env[k])
		}
	}
	return ctr
}

// redactSetting keeps a setting's name only, when it has a value (which may hold a credential).
func redactSetting(kv string) string {
	if k, _, ok := strings.Cut(kv, "="); ok {
		return k + "=…"
	}
	return kv
}

// Build compiles the program from ci/ (the module's source) for platform ("" for the engine's) in
// GoImage, with cache volumes for modules and builds, and returns the Go image with the program at
// Bin. The program is static (CGO_ENABLED=0).
func Build(c *dagger.Client, ci *dagger.Directory, platform dagger.Platform, env GoEnv) *dagger.Container {
	ctr := c.Container().From(GoImage).
		WithMountedCache("/go/pkg/mod", c.CacheVolume("wanderlust-gomod")).
		WithMountedCache("/root/.cache/go-build", c.CacheVolume("wanderlust-gobuild")).
		WithEnvVariable("CGO_ENABLED", "0")
	ctr = env.Apply(ctr)
	if platform != "" {
		os, arch, _ := strings.Cut(string(platform), "/")
		arch, _, _ = strings.Cut(arch, "/")
		ctr = ctr.WithEnvVariable("GOOS", os).WithEnvVariable("GOARCH", arch)
	}
	return ctr.WithDirectory("/src/ci", Source(c, ci)).
		WithWorkdir("/src/ci/cmd/gitops").
		// -mod=mod: the engine may have completed ci/go.mod for its generated code; the build fills
		// any checksum that adds instead of failing.
		WithExec([]string{"go", "build", "-mod=mod", "-trimpath", "-ldflags", "-s -w", "-o", Bin, "."}).
		WithWorkdir("/")
}

// CABundle is where the published image keeps the CA certificates (Go's crypto/x509 reads it), copied
// from GoImage: the image has nothing else but the program — no shell, no base image to keep patched.
const CABundle = "/etc/ssl/certs/ca-certificates.crt"

// User runs the published program: not root.
const User = "65532:65532"

// Image is the published image of the program for platform: the program built by Build and the CA
// certificates, on an empty image, run as User with the program as its entrypoint.
func Image(c *dagger.Client, ci *dagger.Directory, platform dagger.Platform, env GoEnv, version string) *dagger.Container {
	bin := Build(c, ci, platform, env).File(Bin)
	return c.Container(dagger.ContainerOpts{Platform: platform}).
		WithFile(CABundle, c.Container().From(GoImage).File(CABundle)).
		WithFile(Bin, bin, dagger.ContainerWithFileOpts{Permissions: 0o755}).
		WithUser(User).
		WithLabel("org.opencontainers.image.title", gitops.Program).
		WithLabel("org.opencontainers.image.version", version).
		WithEntrypoint([]string{Bin})
}

// Pull is the published program image.
func Pull(c *dagger.Client, image string) *dagger.Container {
	return c.Container().From(image)
}

// Run runs one request (gitops.Args) in ctr with the secrets as secret variables, and returns the
// program's result — for a failed run too (exit 1: its report is on stdout). A program that could not
// run the request (exit 2, a crash, a wrong image) is an error naming the command and its stderr.
func Run(ctx context.Context, ctr *dagger.Container, cmd string, request any, secrets map[string]*dagger.Secret) (*gitops.Result, error) {
	args, err := gitops.Args(cmd, request)
	if err != nil {
		return nil, err
	}
	args[0] = Bin // by its path: the published image has no shell and sets no PATH
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		if secrets[k] != nil {
			ctr = ctr.WithSecretVariable(k, secrets[k])
		}
	}
	x, err := execerr.Result(ctx, cmd+": the GitOps program did not run",
		ctr.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny, UseEntrypoint: false}))
	if err != nil {
		return nil, fmt.Errorf("%w\n(the program is built from this module's source; --runner-image runs a published image of it instead)", err)
	}
	if x.Code == 0 || x.Code == 1 {
		if res, err := gitops.ReadResult(x.Stdout); err == nil {
			if x.Code == 1 && res.Error == "" {
				res.Error = cmd + " failed"
			}
			return res, nil
		}
	}
	return nil, fmt.Errorf("%s: %s %s exited with %d: %s", cmd, gitops.Program, cmd, x.Code, execerr.Tail(x.Stderr, 20))
}
