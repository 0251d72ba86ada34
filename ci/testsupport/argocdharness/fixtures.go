package argocdharness

import (
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
