package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"sigs.k8s.io/kustomize/kyaml/yaml"

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
	ImageBin         = layout.ImageBin
	ImageManifests   = layout.ImageManifests
	ImageKubernetes  = layout.ImageKubernetes
	ImageData        = layout.ImageData
)

// RepoURL is the GitOps repository as the services and the runner reach it.
func RepoURL() string { return layout.RepoURL() }

// ArgoConfig configures ServeArgoCD.
type ArgoConfig struct {
	Stack Config
	// RepoURL is the GitOps repository the applications track, GitUser and GitPassword its login.
	RepoURL, GitUser, GitPassword string
	// Apps is the directory of Application manifests (kubernetes/argocd): each is created with its
	// source's repoURL set to RepoURL.
	Apps string
	// Health is the address of the health endpoint, opened once the applications exist.
	Health string
	// Ready, when set, is called then with the applications' names.
	Ready func(apps []string)
}

// ServeArgoCD runs the Argo CD stack with the applications of cfg.Apps until ctx ends, opening the
// health endpoint (200, JSON: server, applications) only once everything is up.
func ServeArgoCD(ctx context.Context, cfg ArgoConfig) error {
	st, err := Start(cfg.Stack)
	if err != nil {
		return err
	}
	defer st.Stop()
	if err := st.AddRepository(cfg.RepoURL, cfg.GitUser, cfg.GitPassword); err != nil {
		return fmt.Errorf("sandbox: repository: %w", err)
	}
	apps, err := st.CreateApps(cfg.Apps, cfg.RepoURL)
	if err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(apps)
	}
	status := map[string]any{"ready": true, "server": fmt.Sprintf(":%s", strings.Split(st.Server, ":")[1]), "applications": apps}
	return serveUntil(ctx, cfg.Health, healthHandler(status))
}

// CreateApps creates the Applications of the manifests in dir, each tracking repoURL, and the
// static volumes of their namespaces; it returns their names.
func (h *Stack) CreateApps(dir, repoURL string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sandbox: applications: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		app, err := yaml.Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s: %w", e.Name(), err)
		}
		if app.GetKind() != "Application" {
			continue
		}
		if err := app.PipeE(yaml.Lookup("spec", "source"), yaml.SetField("repoURL", yaml.NewStringRNode(repoURL))); err != nil {
			return nil, fmt.Errorf("sandbox: %s: %w", e.Name(), err)
		}
		ns, err := app.Pipe(yaml.Lookup("spec", "destination", "namespace"))
		if err != nil || ns == nil {
			return nil, fmt.Errorf("sandbox: %s: no destination namespace", e.Name())
		}
		if err := h.volumes(yaml.GetValue(ns)); err != nil {
			return nil, err
		}
		s, err := app.String()
		if err != nil {
			return nil, err
		}
		if err := h.Apply(s); err != nil {
			return nil, err
		}
		names = append(names, app.GetName())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("sandbox: no Application in %s", dir)
	}
	sort.Strings(names)
	return names, nil
}

// Seed copies the kubernetes/ tree at kubernetesDir into dst/kubernetes, adding to each overlay a
// patch that sets the Deployments' progress deadline to ProgressDeadline seconds.
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
		s := strings.Replace(string(k), "\npatches:\n", "\npatches:\n  - path: sandbox-deadline.yaml\n    target: {kind: Deployment}\n", 1)
		if s == string(k) {
			s += "\npatches:\n  - path: sandbox-deadline.yaml\n    target: {kind: Deployment}\n"
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

// ServeRegistry serves an in-memory OCI registry (go-containerregistry's) until ctx ends.
func ServeRegistry(ctx context.Context, addr string) error {
	return serveUntil(ctx, addr, ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
}

// MailConfig configures ServeMail.
type MailConfig struct {
	User, Password string
	// SMTP is the SMTP address; HTTP that of the message listing.
	SMTP, HTTP string
}

// ServeMail runs the mail catcher until ctx ends: SMTP (AUTH PLAIN over plain text: the engine's
// network only) and the HTTP listing.
func ServeMail(ctx context.Context, cfg MailConfig) error {
	m := &Mail{User: cfg.User, Password: cfg.Password}
	srv := m.SMTPServer("mail")
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", cfg.SMTP)
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	return serveUntil(ctx, cfg.HTTP, m.Handler())
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
