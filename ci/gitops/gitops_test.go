package gitops

import (
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// A request goes through the program's arguments and comes back whole; a field the program does
// not know (a module newer than its runner image) is refused, not ignored.
func TestRequestsRoundTripAndUnknownFieldsAreRefused(t *testing.T) {
	q := Deploy{Config: Config{Repo: "https://git.example/gitops.git", ArgoCD: ArgoCD{Server: "argocd:443"}, SMTP: SMTP{Host: "smtp", To: []string{"a@b"}}},
		Phase: PhaseRun, Env: "dev", Images: []string{"r/wanderlust-backend:1"}, Verify: probe.Flags{URLs: []string{"https://x"}, For: "1s"},
		Evidence: &Evidence{FailOn: "HIGH"}, RunID: "r1", Report: report.New("Wanderlust deploy", "dev")}
	args, err := Args(CmdDeploy, q)
	if err != nil || len(args) != 4 || args[0] != Program || args[1] != CmdDeploy || args[2] != "--request" {
		t.Fatalf("%q %v", args, err)
	}
	var got Deploy
	if err := ReadRequest(args[3], &got); err != nil {
		t.Fatal(err)
	}
	if got.Repo != q.Repo || got.ArgoCD.Server != "argocd:443" || got.Verify.For != "1s" || got.Evidence.FailOn != "HIGH" || got.Report.Title != "Wanderlust deploy" {
		t.Errorf("round trip: %+v", got)
	}
	if err := ReadRequest(strings.Replace(args[3], `"Env"`, `"Environment"`, 1), &got); err == nil {
		t.Error("an unknown field was accepted")
	}
	if _, err := ReadResult("exit status 2"); err == nil {
		t.Error("a non-result was read as a result")
	}
}

func TestCheckServerNeverEchoesCredentials(t *testing.T) {
	if err := CheckServer("argocd.example.com:443"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"admin:argo-planted-7@argocd.example.com:443", "https://argo-planted-7@argocd:443", "argocd.example.com"} {
		err := CheckServer(bad)
		if err == nil || strings.Contains(err.Error(), "argo-planted-7") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
