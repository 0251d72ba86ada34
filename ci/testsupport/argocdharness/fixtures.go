package argocdharness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	// No storage provisioner here: static volumes, pre-bound to the StatefulSets' claims.
	for _, pv := range []struct{ claim, size string }{{"mongo-data-mongodb-0", "5Gi"}, {"redis-data-redis-0", "1Gi"}} {
		if err := h.Apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"%s-%s"},
"spec":{"capacity":{"storage":%q},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/tmp/%s"},
"claimRef":{"namespace":%q,"name":%q}}}`, ns, pv.claim, pv.size, ns, ns, pv.claim)); err != nil {
			return err
		}
	}
	policy := `"syncOptions":["CreateNamespace=true"]`
	if auto {
		policy = `"automated":{"prune":true,"selfHeal":true},` + policy
	}
	return h.Apply(fmt.Sprintf(`{"apiVersion":"argoproj.io/v1alpha1","kind":"Application","metadata":{"name":%q,"namespace":"argocd"},
"spec":{"project":"default","source":{"repoURL":%q,"targetRevision":"main","path":"kubernetes/overlays/%s"},
"destination":{"server":"https://kubernetes.default.svc","namespace":%q},"syncPolicy":{%s}}}`, name, repoURL, overlay, ns, policy))
}
