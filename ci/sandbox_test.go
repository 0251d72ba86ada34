package main

import (
	"context"
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
		_, err := (&Wanderlust{}).Sandbox(c.Directory(), c.Directory(), c.Secret("env://SANDBOX_PASSWORD")).Deploy(context.Background(), tc.env, tc.version, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %q version %q: err = %v", tc.env, tc.version, err)
		}
		if strings.Contains(session.All(), "withExec") || strings.Contains(session.All(), "asService") {
			t.Errorf("env %q version %q: built or started something before refusing", tc.env, tc.version)
		}
	}
	session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
	c := useSession(t)
	_, err := (&Wanderlust{GoEnv: []string{"GOPROXY=https://bob:s3cret@goproxy.invalid"}}).Sandbox(c.Directory(), c.Directory(), nil).Deploy(context.Background(), "dev", "2.0.0", false)
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(session.All(), "withExec") {
		t.Errorf("a Go setting with credentials: err = %v, built: %v", err, strings.Contains(session.All(), "withExec"))
	}
	if _, err := (&Wanderlust{}).Sandbox(nil, nil, nil).Promote(context.Background(), "dev", "Staging"); err == nil {
		t.Error("promote to Staging accepted")
	}
}
