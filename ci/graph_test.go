package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// heavy are the module paths that made the module load in minutes: Argo CD and Kubernetes. They
// belong to the GitOps program (ci/cmd/gitops, a Go module of its own).
var heavy = []string{"github.com/argoproj/", "k8s.io/kubernetes", "k8s.io/client-go", "k8s.io/apimachinery", "k8s.io/api/", "k8s.io/kubectl"}

// The module's main package reaches none of them, and ci/go.mod does not name them: a cold engine
// compiles (and downloads) only what the module's functions run.
func TestTheModuleLeavesArgoCDAndKubernetesToTheProgram(t *testing.T) {
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	if _, err := os.Stat("go.stub.mod"); err == nil {
		args = append(args, "-modfile=go.stub.mod")
	}
	out, err := exec.Command("go", append(args, ".")...).Output()
	if err != nil {
		t.Fatal(err)
	}
	pkgs := strings.Fields(string(out))
	for _, p := range pkgs {
		for _, h := range heavy {
			if strings.HasPrefix(p, h) {
				t.Errorf("the module imports %s", p)
			}
		}
	}
	if len(pkgs) > 600 {
		t.Errorf("the module's graph has %d packages, want at most 600", len(pkgs))
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range heavy {
		if strings.Contains(string(mod), h) {
			t.Errorf("ci/go.mod names %s", strings.TrimSuffix(h, "/"))
		}
	}
}
