package argocdharness

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
)

// SeedRepo creates repository name on srv holding the kubernetes/ tree at kubernetesDir plus one
// overlay per entry of overlays (overlay name → namespace), each a copy of the dev overlay deploying
// into its namespace, with a 5-second progress deadline for the backend so that a failed rollout is
// detected in seconds.
func SeedRepo(srv *gitserver.Server, kubernetesDir, name string, overlays map[string]string) error {
	seed, err := os.MkdirTemp("", "seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(seed)
	if err := os.CopyFS(filepath.Join(seed, "kubernetes"), os.DirFS(kubernetesDir)); err != nil {
		return err
	}
	for overlay, ns := range overlays {
		dir := filepath.Join(seed, "kubernetes/overlays", overlay)
		_ = os.RemoveAll(dir)
		if err := os.CopyFS(dir, os.DirFS(filepath.Join(kubernetesDir, "overlays/dev"))); err != nil {
			return err
		}
		k, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
		if err != nil {
			return err
		}
		s := strings.Replace(string(k), "namespace: wanderlust-dev", "namespace: "+ns, 1)
		s = strings.Replace(s, "  - path: resources.yaml\n", "  - path: resources.yaml\n  - path: deadline.yaml\n", 1)
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(s), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "deadline.yaml"), []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\nspec:\n  progressDeadlineSeconds: 5\n"), 0o644); err != nil {
			return err
		}
	}
	return srv.CreateRepo(name, "main", os.DirFS(seed))
}

// Application creates an Argo CD Application deploying overlay of repoURL into namespace ns, with
// automated sync (prune, self-heal) when auto, and the static volumes its StatefulSets claim.
func (h *Harness) Application(name, repoURL, overlay, ns string, auto bool) error {
	return h.App(AppSpec{Name: name, RepoURL: repoURL, Overlay: overlay, Namespace: ns, Auto: auto})
}

// volumes makes the static volumes, pre-bound to the StatefulSets' claims in ns (no storage
// provisioner here).
func (h *Harness) volumes(ns string) error {
	for _, pv := range []struct{ claim, size string }{{"mongo-data-mongodb-0", "5Gi"}, {"redis-data-redis-0", "1Gi"}} {
		if err := h.Apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"%s-%s"},
"spec":{"capacity":{"storage":%q},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/tmp/%s"},
"claimRef":{"namespace":%q,"name":%q}}}`, ns, pv.claim, pv.size, ns, ns, pv.claim)); err != nil {
			return err
		}
	}
	return nil
}

// AppSpec describes a test Application beyond Application's defaults.
type AppSpec struct {
	Name, RepoURL, Overlay, Namespace string
	Auto                              bool
	// Project (default "default"), TargetRevision (default "main").
	Project, TargetRevision string
	// MultiSource gives the application two sources: a ref-only source of the same repository
	// first (as Helm value files are referenced), then the overlay (so ours is at index 1).
	MultiSource bool
}

// App creates an Application from spec, with the static volumes its StatefulSets claim.
func (h *Harness) App(s AppSpec) error {
	if err := h.volumes(s.Namespace); err != nil {
		return err
	}
	if s.Project == "" {
		s.Project = "default"
	}
	if s.TargetRevision == "" {
		s.TargetRevision = "main"
	}
	policy := `"syncOptions":["CreateNamespace=true"]`
	if s.Auto {
		policy = `"automated":{"prune":true,"selfHeal":true},` + policy
	}
	overlay := fmt.Sprintf(`{"repoURL":%q,"targetRevision":%q,"path":"kubernetes/overlays/%s"}`, s.RepoURL, s.TargetRevision, s.Overlay)
	source := `"source":` + overlay
	if s.MultiSource {
		source = fmt.Sprintf(`"sources":[{"repoURL":%q,"targetRevision":%q,"ref":"values"},%s]`, s.RepoURL, s.TargetRevision, overlay)
	}
	return h.Apply(fmt.Sprintf(`{"apiVersion":"argoproj.io/v1alpha1","kind":"Application","metadata":{"name":%q,"namespace":"argocd"},
"spec":{"project":%q,%s,"destination":{"server":"https://kubernetes.default.svc","namespace":%q},"syncPolicy":{%s}}}`,
		s.Name, s.Project, source, s.Namespace, policy))
}

// Project creates an AppProject that may deploy anything anywhere, with the extra spec fields given
// as JSON members (e.g. `"roles":[…]` or `"syncWindows":[…]`; "" for none).
func (h *Harness) Project(name, extra string) error {
	if extra != "" {
		extra = "," + extra
	}
	return h.Apply(fmt.Sprintf(`{"apiVersion":"argoproj.io/v1alpha1","kind":"AppProject","metadata":{"name":%q,"namespace":"argocd"},
"spec":{"sourceRepos":["*"],"destinations":[{"server":"*","namespace":"*"}],"clusterResourceWhitelist":[{"group":"*","kind":"*"}]%s}}`, name, extra))
}

// ProjectToken issues a JWT for a role of a project through Argo CD's API (as admin).
func (h *Harness) ProjectToken(project, role string) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.Server+"/api/v1/projects/"+project+"/roles/"+role+"/token",
		strings.NewReader(`{"expiresIn":3600}`))
	req.Header.Set("Authorization", "Bearer "+h.Token)
	req.Header.Set("Content-Type", "application/json")
	var resp *http.Response
	var err error
	// The server sees a new project a moment after it is created.
	for i := 0; i < 20; i++ {
		if resp, err = h.http.Do(req); err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		time.Sleep(250 * time.Millisecond)
		req.Body = io.NopCloser(strings.NewReader(`{"expiresIn":3600}`))
	}
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("create token for %s/%s: %s: %s", project, role, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		return "", fmt.Errorf("create token for %s/%s: no token in the answer (%v)", project, role, err)
	}
	return out.Token, nil
}
