package argocdharness

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// One harness per test binary: Shared starts it on first use, Main stops it after the last test.
var shared struct {
	once    sync.Once
	h       *Harness
	closers []func()
	failed  bool
}

// Main runs the tests and then stops the shared harness; call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	for i := len(shared.closers) - 1; i >= 0; i-- {
		shared.closers[i]()
	}
	os.Exit(code)
}

// Shared returns the harness shared by the test binary's tests, starting it on first use.
func Shared(t testing.TB) *Harness {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			shared.failed = true
		}
	})
	shared.once.Do(func() { shared.h = Start(&longLived{TB: t}) })
	if shared.h == nil {
		t.Fatal("the shared Argo CD harness did not start")
	}
	return shared.h
}

// OnClose registers f to run when the shared harness stops (before it).
func OnClose(f func()) { shared.closers = append(shared.closers, f) }

// longLived outlives the test that started the harness: cleanups run from Main, logs go to standard
// error, and it counts as failed when any test failed (so that the harness's logs are kept).
type longLived struct{ testing.TB }

func (l *longLived) Cleanup(f func())                { OnClose(f) }
func (l *longLived) Failed() bool                    { return shared.failed }
func (l *longLived) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (l *longLived) Helper()                         {}
