package execerr

import (
	"context"
	"errors"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

// A failed exec is named by its stage, command, exit code and the end of its output — not by the
// engine's bare "exit code: 1"; any other error keeps its text under the stage.
func TestWrapNamesTheStageAndTheCommand(t *testing.T) {
	stderr := strings.Repeat("noise\n", 30) + "  ● auth › rejects a bad token\n"
	daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		if field == "sync" {
			return nil, &daggerfake.ExecFailure{Cmd: []string{"npm", "test"}, Code: 1, Stderr: stderr}
		}
		return daggerfake.Default(field, q)
	}))
	_, err := dagger.Connect().Container().From("node:22").WithExec([]string{"npm", "test"}).Sync(context.Background())
	got := Wrap("build backend: tests failed", err)
	var ee *dagger.ExecError
	if !errors.As(got, &ee) {
		t.Fatalf("the exec error is lost: %v", got)
	}
	msg := got.Error()
	if !strings.HasPrefix(msg, "build backend: tests failed: `npm test` exited with 1:") || !strings.Contains(msg, "rejects a bad token") ||
		strings.Count(msg, "noise") > 19 {
		t.Errorf("message:\n%s", msg)
	}
	if got := Wrap("scan", errors.New("registry down")); got.Error() != "scan: registry down" {
		t.Errorf("other error: %v", got)
	}
	if Wrap("x", nil) != nil {
		t.Error("nil wrapped")
	}
}
