package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

// A bad environment or version is refused before anything is built or started.
func TestSandboxChecksInputsBeforeBuilding(t *testing.T) {
	for _, tc := range []struct{ env, version, want string }{
		{"Prod", "2.0.0", "Prod"}, {"dev", "bad tag", "version"}, {"../dev", "2.0.0", "dev"},
	} {
		session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
		c := useSession(t)
		_, err := (&Wanderlust{}).Sandbox(c.Directory(), c.Directory(), "").Deploy(context.Background(), tc.env, tc.version, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %q version %q: err = %v", tc.env, tc.version, err)
		}
		if strings.Contains(session.All(), "withExec") || strings.Contains(session.All(), "asService") {
			t.Errorf("env %q version %q: built or started something before refusing", tc.env, tc.version)
		}
	}
	session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
	c := useSession(t)
	_, err := (&Wanderlust{GoEnv: []string{"GOPROXY=https://bob:s3cret@goproxy.invalid"}}).Sandbox(c.Directory(), c.Directory(), "").Deploy(context.Background(), "dev", "2.0.0", false)
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(session.All(), "withExec") {
		t.Errorf("a Go setting with credentials: err = %v, built: %v", err, strings.Contains(session.All(), "withExec"))
	}
	if _, err := (&Wanderlust{}).Sandbox(nil, nil, "").Promote(context.Background(), "dev", "Staging"); err == nil {
		t.Error("promote to Staging accepted")
	}
}

// The sandbox's deploy is one report: the module's build stage goes to the runner, which goes on
// with it; a failed run (exit 1) returns its report in the error, and where to look — not the
// engine's "exit code: 1".
func TestSandboxDeployIsOneReport(t *testing.T) {
	for _, code := range []int{0, 1} {
		session := daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
			switch field {
			case "exitCode":
				return code, nil
			case "stdout":
				return "| sync | failed | rolled back |", nil
			}
			return daggerfake.Default(field, q)
		}))
		c := useSession(t)
		out, err := (&Wanderlust{}).Sandbox(c.Directory(), c.Directory(), "").Deploy(context.Background(), "dev", "2.0.0", true)
		runs := daggerfake.Calls(session.All(), "withExec")
		var deploy string
		for _, r := range runs {
			if strings.Contains(r, `"sandbox-deploy"`) {
				deploy = r
			}
		}
		if !strings.Contains(deploy, `"--report"`) || !strings.Contains(deploy, `\"name\": \"build\"`) || !strings.Contains(deploy, "expect:ANY") {
			t.Errorf("the runner does not get the build stage, or fails on a failed run: %s", deploy)
		}
		switch {
		case code == 0 && (err != nil || !strings.Contains(out, "rolled back") || !strings.Contains(out, "dagger call sandbox")):
			t.Errorf("exit 0: %q %v", out, err)
		case code == 1 && (err == nil || !strings.Contains(err.Error(), "sandbox deploy: exited with 1") || !strings.Contains(err.Error(), "| sync | failed")):
			t.Errorf("exit 1: %v", err)
		}
	}
}

// One session: `sandbox up --deploy --promote-to staging` starts the four services itself (Dagger
// keeps started services for the session), deploys and promotes through runners bound to them, and
// forwards the very same service definitions to the host — what the browser shows is what was
// deployed.
func TestSandboxUpShowsWhatItDeployed(t *testing.T) {
	session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
	c := useSession(t)
	sb := (&Wanderlust{}).Sandbox(c.Directory(), c.Directory(), "")
	if _, err := sb.Up(context.Background(), false, "2.0.0", "staging"); err == nil {
		t.Error("--promote-to without --deploy accepted")
	}
	svc, err := sb.Up(context.Background(), true, "2.0.0", "staging")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ID(context.Background()); err != nil {
		t.Fatal(err)
	}
	bindings := func(q string) map[string]string {
		out := map[string]string{}
		for _, a := range daggerfake.Calls(q, "withServiceBinding") {
			alias, id := argValue(a, "alias"), regexp.MustCompile(`fake-id-[0-9a-f]{16}`).FindString(a)
			out[alias] = session.Definition(id) // as the engine compares them: by content
		}
		return out
	}
	started := 0
	var runs []map[string]string
	var up map[string]string
	for _, q := range session.Queries() {
		switch {
		case strings.HasSuffix(strings.TrimRight(q, "}"), "{start"):
			started++
		case strings.Contains(q, `"sandbox-deploy"`) || strings.Contains(q, `"sandbox-promote"`):
			runs = append(runs, bindings(q))
		case strings.Contains(q, `"proxy"`):
			up = bindings(q)
		}
	}
	if started != 4 {
		t.Errorf("%d services started explicitly, want 4 (git, registry, mail, argocd)", started)
	}
	if len(runs) != 2 || len(up) != 4 {
		t.Fatalf("runs %v, up %v", runs, up)
	}
	for _, r := range runs {
		for alias, id := range up {
			if r[alias] != id {
				t.Errorf("%s: the runner binds another service than up forwards:\n%s\n%s", alias, r[alias], id)
			}
		}
	}
}
