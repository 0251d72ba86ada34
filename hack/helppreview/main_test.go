package main

import (
	"strings"
	"testing"
)

// `dagger call --help` must read as the pipeline's table of contents: every function and every flag
// documented, the shared configuration in the constructor, each function with only its own flags.
func TestTheModuleHelpIsComplete(t *testing.T) {
	m, err := Load("../../ci")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Functions) < 13 {
		t.Fatalf("%d functions", len(m.Functions))
	}
	for _, a := range m.Args {
		if a.Doc == "" {
			t.Errorf("constructor flag %s has no description", a.Name)
		}
	}
	shared := map[string]bool{}
	for _, a := range m.Args {
		shared[a.Name] = true
	}
	for _, want := range []string{"--source", "--registry", "--registry-password", "--repo", "--git-token", "--argocd-server", "--argocd-token", "--app-namespace", "--smtp-host", "--mail-to"} {
		if !shared[want] {
			t.Errorf("the constructor lacks %s", want)
		}
	}
	for _, f := range m.Functions {
		if f.Doc == "" {
			t.Errorf("function %s has no description", f.Name)
		}
		for _, a := range f.Args {
			if a.Doc == "" {
				t.Errorf("%s %s has no description", f.Name, a.Name)
			}
			if shared[a.Name] {
				t.Errorf("%s repeats the constructor's %s", f.Name, a.Name)
			}
		}
		// deploy's own: what to deploy (8), how (--no-sync, --rollback, --timeout, --dry-run,
		// --skip-scan, --nvd-api-key, --skip-ci), --verify-* (7), the canary's pauses (--canary-steps,
		// --verify-canary-url), the report (--report-format, --exit-zero) and the evidence gate (2).
		if f.Name == "deploy" && len(f.Args) > 28 {
			t.Errorf("deploy takes %d flags; the shared ones belong to the constructor", len(f.Args))
		}
	}
	var b strings.Builder
	if err := m.Print(&b, ""); err != nil || !strings.Contains(b.String(), "  deploy ") || !strings.Contains(b.String(), "--argocd-server") {
		t.Errorf("help:\n%s", b.String())
	}
}
