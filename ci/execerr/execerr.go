// Package execerr names a failed container command: the stage, the command, its exit code and the
// end of what it printed, instead of the engine's bare "exit code: 1".
package execerr

import (
	"errors"
	"fmt"
	"strings"

	"wanderlust.dev/pipeline/ci/internal/dagger"
)

// Wrap returns err with the stage, and for a failed exec the command, its exit code and the last
// lines of its stderr (or stdout when stderr is empty). Nil stays nil; other errors get the stage.
func Wrap(stage string, err error) error {
	if err == nil {
		return nil
	}
	var ee *dagger.ExecError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s: %w", stage, err)
	}
	out := ee.Stderr
	if strings.TrimSpace(out) == "" {
		out = ee.Stdout
	}
	msg := fmt.Sprintf("%s: `%s` exited with %d", stage, strings.Join(ee.Cmd, " "), ee.ExitCode)
	if tail := Tail(out, 20); tail != "" {
		msg += ":\n" + tail
	}
	return &failure{msg: msg, err: err}
}

type failure struct {
	msg string
	err error
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.err }

// Tail is the last n lines of s, trimmed.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
