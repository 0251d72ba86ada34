// Package execerr names a failed container command: the stage, the command, its exit code and the
// end of what it printed, instead of the engine's bare "exit code: 1".
package execerr

import (
	"context"
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

// Exit is what an exec added with Expect ANY left: its exit code and output.
type Exit struct {
	Code           int
	Stdout, Stderr string
}

// Result runs ctr, whose last exec was added with Expect ANY, and reads its exit code and output
// whatever the code; an exec the engine could not run at all is an error under stage.
func Result(ctx context.Context, stage string, ctr *dagger.Container) (*Exit, error) {
	ctr, err := ctr.Sync(ctx)
	if err != nil {
		return nil, Wrap(stage, err)
	}
	x := &Exit{}
	if x.Code, err = ctr.ExitCode(ctx); err != nil {
		return nil, Wrap(stage, err)
	}
	if x.Stdout, err = ctr.Stdout(ctx); err != nil {
		return nil, Wrap(stage, err)
	}
	if x.Stderr, err = ctr.Stderr(ctx); err != nil {
		return nil, Wrap(stage, err)
	}
	return x, nil
}

// Output reads the stdout of ctr's last exec, which must have been added with Expect ANY: a command
// that exited non-zero is an error naming the stage and the exit code, holding what it printed on
// stdout (a run report) and the end of its stderr — not lost in the engine's message.
func Output(ctx context.Context, stage string, ctr *dagger.Container) (string, error) {
	x, err := Result(ctx, stage, ctr)
	if err != nil {
		return "", err
	}
	if x.Code == 0 {
		return x.Stdout, nil
	}
	msg := fmt.Sprintf("%s: exited with %d", stage, x.Code)
	if t := Tail(x.Stderr, 10); t != "" {
		msg += ":\n" + t
	}
	return "", fmt.Errorf("%s\n\n%s", msg, strings.TrimSpace(x.Stdout))
}
