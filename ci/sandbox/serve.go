package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/sandbox/layout"
)

// The sandbox's names, ports and paths (package layout, which the module's recipes use alone).
const (
	ArgoCDPort       = layout.ArgoCDPort
	HealthPort       = layout.HealthPort
	GitPort          = layout.GitPort
	RegistryPort     = layout.RegistryPort
	SMTPPort         = layout.SMTPPort
	MailHTTPPort     = layout.MailHTTPPort
	RepoName         = layout.RepoName
	Branch           = layout.Branch
	ProgressDeadline = layout.ProgressDeadline
	GitHost          = layout.GitHost
	RegistryHost     = layout.RegistryHost
	MailHost         = layout.MailHost
	ArgoCDHost       = layout.ArgoCDHost
	GitUser          = layout.GitUser
	KubeHost         = layout.KubeHost
	KubePort         = layout.KubePort
	ImageKubernetes  = layout.ImageKubernetes
	ImageData        = layout.ImageData
)

// RepoURL is the GitOps repository as the services and the runner reach it.
func RepoURL() string { return layout.RepoURL() }

// BootstrapConfig plus where ServeBootstrap answers.
type BootstrapServer struct {
	BootstrapConfig
	// Kube is the cluster's API (kwok's cluster image: http://kube:8080, no login).
	Kube string
	// Health is the address that answers (200, JSON: the applications) once the bootstrap is done.
	Health string
}

// ServeBootstrap bootstraps the cluster (Bootstrap) and then answers on cfg.Health until ctx ends:
// Argo CD's services bind this one, and Dagger starts a service's bindings, and waits for their
// ports, before the service itself — so Argo CD starts on a prepared cluster.
func ServeBootstrap(ctx context.Context, cfg BootstrapServer, logf func(string)) error {
	t0 := time.Now()
	apps, err := Bootstrap(ctx, NewKube(cfg.Kube, ""), cfg.BootstrapConfig)
	if err != nil {
		return err
	}
	logf(fmt.Sprintf("sandbox bootstrapped in %s: applications %s", time.Since(t0).Round(time.Millisecond), strings.Join(apps, ", ")))
	return serveUntil(ctx, cfg.Health, healthHandler(map[string]any{"ready": true, "applications": apps}))
}

// Seed copies the kubernetes/ tree at kubernetesDir into dst/kubernetes, adding to each overlay a
// patch that sets the progress deadline of the Deployments and of the Argo Rollouts (prod's canary,
// which then aborts itself) to ProgressDeadline seconds.
func Seed(dst, kubernetesDir string) error {
	if err := os.CopyFS(filepath.Join(dst, "kubernetes"), os.DirFS(kubernetesDir)); err != nil {
		return err
	}
	overlays, err := os.ReadDir(filepath.Join(dst, "kubernetes", "overlays"))
	if err != nil {
		return err
	}
	for _, o := range overlays {
		dir := filepath.Join(dst, "kubernetes", "overlays", o.Name())
		k, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil || !o.IsDir() {
			continue
		}
		const target = "  - path: sandbox-deadline.yaml\n    target: {kind: \"^(Deployment|Rollout)$\"}\n"
		s := strings.Replace(string(k), "\npatches:\n", "\npatches:\n"+target, 1)
		if s == string(k) {
			s += "\npatches:\n" + target
		}
		patch := fmt.Sprintf("# The sandbox only: a rollout that never becomes Ready fails in seconds.\n- op: add\n  path: /spec/progressDeadlineSeconds\n  value: %d\n", ProgressDeadline)
		if err := os.WriteFile(filepath.Join(dir, "sandbox-deadline.yaml"), []byte(patch), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// GitConfig configures ServeGit.
type GitConfig struct {
	// Root holds the repositories; Kubernetes is the kubernetes/ tree the repository is seeded with.
	Root, Kubernetes string
	User, Password   string
	Addr             string
}

// ServeGit seeds the GitOps repository (RepoName, branch Branch) with the kubernetes/ tree and
// serves it over smart HTTP with basic auth until ctx ends.
func ServeGit(ctx context.Context, cfg GitConfig) error {
	if cfg.User == "" || cfg.Password == "" {
		return errors.New("sandbox: the git remote needs a user and a password")
	}
	tree, err := os.MkdirTemp("", "sandbox-tree-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tree)
	if err := Seed(tree, cfg.Kubernetes); err != nil {
		return fmt.Errorf("sandbox: seed: %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, RepoName+".git")); errors.Is(err, fs.ErrNotExist) {
		if err := CreateRepo(cfg.Root, RepoName, Branch, os.DirFS(tree), true); err != nil {
			return fmt.Errorf("sandbox: seed: %w", err)
		}
	}
	h, err := GitHandler(cfg.Root, cfg.User, cfg.Password)
	if err != nil {
		return err
	}
	return serveUntil(ctx, cfg.Addr, h)
}

func healthHandler(status any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(status)
	})
}

// serveUntil serves h on addr until ctx ends.
func serveUntil(ctx context.Context, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
