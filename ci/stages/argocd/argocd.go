// Package argocd makes Argo CD deploy the revision we pushed and waits until it runs, Healthy, with
// the argo-cd API client (as the argocd CLI connects). Unlike `argocd app wait` it checks *which*
// revision is synced, does not trust health read before the controller re-evaluated it after the
// sync, waits for operations of other runs to finish, and follows the application with the Watch
// stream (reconnecting when it drops) rather than a fixed poll.
package argocd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/argoproj/argo-cd/v2/pkg/apiclient"
	applicationpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/application"
	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	synccommon "github.com/argoproj/gitops-engine/pkg/sync/common"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options say which server and application, which revision, and how long to wait.
type Options struct {
	// Server is the Argo CD API server, host:port (ARGOCD_SERVER in the wrappers).
	Server string
	// Token is an Argo CD API token (ARGOCD_AUTH_TOKEN); never logged.
	Token string
	// PlainText talks to a server without TLS; Insecure skips TLS verification; GRPCWeb tunnels gRPC
	// over HTTP/1 (for proxies that do not pass HTTP/2).
	PlainText, Insecure, GRPCWeb bool
	// App is the Application's name; AppNamespace its namespace when not Argo CD's own.
	App, AppNamespace string
	// Revision is the commit SHA that the bump pushed.
	Revision string
	// Timeout bounds the whole wait (default 5 minutes).
	Timeout time.Duration
	// DegradedGrace is how long Degraded health may last before it fails the wait (default 30s).
	DegradedGrace time.Duration
	// RunID tags the sync operation we request (operation.info "run-id").
	RunID string
	// Contains reports whether commit descendant contains commit ancestor (its history reaches it):
	// a newer commit that contains ours counts as deployed. Nil: only our exact revision counts.
	Contains func(ctx context.Context, descendant, ancestor string) (bool, error)
	// Log receives one line per state change; nil discards them.
	Log func(string)
}

// Result describes a deployment that is Synced and Healthy at the revision.
type Result struct {
	App      string
	Revision string // what we asked for
	// SyncedRevision is what Argo CD synced: Revision, or a newer commit that contains it (Contained).
	SyncedRevision string
	Contained      bool
	AutoSync       bool
	Phase          string
	Health         string
	// Durations since the start: refresh done, our operation seen, synced at the revision, healthy.
	Refresh, OperationStart, Synced, Healthy time.Duration
}

// Error is a failed or timed-out wait; it names the application, the revision, the last phase and
// health, and every resource that is not Healthy.
type Error struct {
	App, Revision, Phase, Health, Sync string
	Reason                             string
	Unhealthy                          []string
	Timeout                            bool
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("argocd: application %s at %s: %s (operation %s, sync %s, health %s)", e.App, short(e.Revision), e.Reason, e.Phase, e.Sync, e.Health)
	if len(e.Unhealthy) > 0 {
		msg += "; not healthy: " + strings.Join(e.Unhealthy, "; ")
	}
	return msg
}

// ErrTimeout is wrapped by an Error whose wait timed out.
var ErrTimeout = errors.New("timed out")

func (e *Error) Unwrap() error {
	if e.Timeout {
		return ErrTimeout
	}
	return nil
}

// Sync refreshes the application, syncs it to the revision (or, with auto-sync, waits for the
// controller to do so), and waits until the revision is Synced and Healthy.
func Sync(ctx context.Context, o Options) (*Result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.DegradedGrace <= 0 {
		o.DegradedGrace = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()

	conn, apps, err := connect(o)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	s := &session{o: o, apps: apps, start: start, contains: map[string]bool{}}
	s.judge = &judge{revision: o.Revision, matches: s.matches, grace: o.DegradedGrace}
	res := &Result{App: o.App, Revision: o.Revision}

	// 1. Hard refresh: the controller compares against the new commit now, not at its next poll.
	app, err := apps.Get(ctx, &applicationpkg.ApplicationQuery{Name: &o.App, AppNamespace: s.ns(), Refresh: ptr(string(v1alpha1.RefreshTypeHard))})
	if err != nil {
		return nil, s.rpcError("get", err)
	}
	res.Refresh = time.Since(start)
	res.AutoSync = app.Spec.SyncPolicy != nil && app.Spec.SyncPolicy.Automated != nil
	s.log(app)

	// 2.–3. Without auto-sync we request the sync of our revision, after any operation in flight.
	if !res.AutoSync {
		if err := s.requestSync(ctx, app); err != nil {
			return nil, err
		}
	}

	// 4.–5. Follow the application until the judge says done or failed.
	nctx, stopNudging := context.WithCancel(ctx)
	defer stopNudging()
	setStale := s.nudger(nctx)
	last := app
	for v, reason := s.judge.observe(app, time.Now()); ; {
		switch v {
		case done:
			return s.result(res, last), nil
		case failed:
			return nil, s.fail(last, reason, false)
		}
		setStale(s.judge.staleSince)
		next, err := s.next(ctx, last)
		if err != nil {
			if ctx.Err() != nil {
				return nil, s.fail(last, fmt.Sprintf("not Synced and Healthy at the revision within %s", o.Timeout), true)
			}
			return nil, err
		}
		last = next
		s.log(last)
		if res.OperationStart == 0 && s.judge.ourOperation(last) != nil {
			res.OperationStart = time.Since(start)
		}
		v, reason = s.judge.observe(last, time.Now())
	}
}

func (o Options) validate() error {
	switch {
	case o.Server == "":
		return errors.New("argocd: a server address is required")
	case o.Token == "":
		return errors.New("argocd: an auth token is required")
	case o.App == "":
		return errors.New("argocd: an application name is required")
	case len(o.Revision) < 7:
		return fmt.Errorf("argocd: revision %q is not a commit SHA", o.Revision)
	}
	return nil
}

// connect builds the API client like the argocd CLI, ignoring any local argocd config file.
func connect(o Options) (io.Closer, applicationpkg.ApplicationServiceClient, error) {
	c, err := apiclient.NewClient(&apiclient.ClientOptions{
		ServerAddr: o.Server, AuthToken: o.Token, PlainText: o.PlainText, Insecure: o.Insecure, GRPCWeb: o.GRPCWeb,
		ConfigPath: filepath.Join(os.TempDir(), "wanderlust-argocd-no-config", "config"),
		UserAgent:  "wanderlust-pipeline",
	})
	if err != nil {
		return nil, nil, fmt.Errorf("argocd: connect to %s: %w", o.Server, err)
	}
	conn, apps, err := c.NewApplicationClient()
	if err != nil {
		return nil, nil, fmt.Errorf("argocd: connect to %s: %w", o.Server, err)
	}
	return conn, apps, nil
}

// session is one wait.
type session struct {
	o        Options
	apps     applicationpkg.ApplicationServiceClient
	start    time.Time
	judge    *judge
	stream   applicationpkg.ApplicationService_WatchClient
	polling  bool
	lastLine string

	mu       sync.Mutex
	contains map[string]bool
}

func (s *session) ns() *string {
	if s.o.AppNamespace == "" {
		return nil
	}
	return &s.o.AppNamespace
}

// matches reports whether rev is our revision, or a commit that contains it.
func (s *session) matches(rev string) (bool, bool) {
	if rev == "" {
		return false, false
	}
	if rev == s.o.Revision || strings.HasPrefix(rev, s.o.Revision) {
		return true, false
	}
	if s.o.Contains == nil {
		return false, false
	}
	s.mu.Lock()
	ok, seen := s.contains[rev]
	s.mu.Unlock()
	if !seen {
		var err error
		ok, err = s.o.Contains(context.Background(), rev, s.o.Revision)
		if err != nil {
			s.logf("cannot tell whether %s contains %s: %v", short(rev), short(s.o.Revision), err)
			return false, false
		}
		s.mu.Lock()
		s.contains[rev] = ok
		s.mu.Unlock()
	}
	return ok, ok
}

// nudger asks the controller to re-evaluate the application when our sync is done but its health has
// not been evaluated since. Status timestamps have one-second precision, so the evaluation must land
// in a later second; rather than wait for the controller's next pass, it requests a normal refresh
// a second after the operation ended, and then once a second while the health stays stale.
func (s *session) nudger(ctx context.Context) (set func(stale time.Time)) {
	var mu sync.Mutex
	var staleSince, nudged time.Time
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			mu.Lock()
			due := !staleSince.IsZero() && time.Since(staleSince) >= time.Second && time.Since(nudged) >= time.Second
			if due {
				nudged = time.Now()
			}
			mu.Unlock()
			if due {
				_, _ = s.apps.Get(ctx, &applicationpkg.ApplicationQuery{Name: &s.o.App, AppNamespace: s.ns(), Refresh: ptr(string(v1alpha1.RefreshTypeNormal))})
			}
		}
	}()
	return func(stale time.Time) {
		mu.Lock()
		staleSince = stale
		mu.Unlock()
	}
}

// requestSync asks for the sync of our revision, first waiting for another operation to finish.
func (s *session) requestSync(ctx context.Context, app *v1alpha1.Application) error {
	announced := false
	for {
		if app.Operation != nil || (app.Status.OperationState != nil && app.Status.OperationState.Phase == synccommon.OperationRunning) {
			if !announced {
				s.logf("another operation is in flight; waiting for it to finish")
				announced = true
			}
			next, err := s.next(ctx, app)
			if err != nil {
				if ctx.Err() != nil {
					return s.fail(app, "another operation did not finish in time", true)
				}
				return err
			}
			app = next
			s.log(app)
			continue
		}
		var prune *bool
		if p := app.Spec.SyncPolicy; p != nil && p.Automated != nil {
			prune = &p.Automated.Prune
		}
		req := &applicationpkg.ApplicationSyncRequest{Name: &s.o.App, AppNamespace: s.ns(), Revision: &s.o.Revision, Prune: prune}
		if s.o.RunID != "" {
			req.Infos = []*v1alpha1.Info{{Name: "run-id", Value: s.o.RunID}}
		}
		s.judge.requestedAt = time.Now()
		_, err := s.apps.Sync(ctx, req)
		if err == nil {
			s.logf("sync of %s requested", short(s.o.Revision))
			return nil
		}
		if st, ok := status.FromError(err); ok && st.Code() == codes.FailedPrecondition && strings.Contains(st.Message(), "another operation is already in progress") {
			continue // lost a race with another operation: wait for it
		}
		return s.rpcError("sync", err)
	}
}

// next returns the application's next state from the watch stream, reconnecting (with backoff) when
// the stream or the server drops, and polling Get where watching is impossible.
func (s *session) next(ctx context.Context, last *v1alpha1.Application) (*v1alpha1.Application, error) {
	backoff := 200 * time.Millisecond
	for {
		if s.polling {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second):
			}
			app, err := s.apps.Get(ctx, &applicationpkg.ApplicationQuery{Name: &s.o.App, AppNamespace: s.ns()})
			if err == nil {
				return app, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if fatal := s.fatalRPC(err); fatal != nil {
				return nil, fatal
			}
			continue
		}
		if s.stream == nil {
			stream, err := s.apps.Watch(ctx, &applicationpkg.ApplicationQuery{Name: &s.o.App, AppNamespace: s.ns()})
			if err != nil {
				if st, ok := status.FromError(err); ok && st.Code() == codes.Unimplemented {
					s.logf("the server cannot stream; polling instead")
					s.polling = true
					continue
				}
				if err := s.reconnect(ctx, "watch failed", err, &backoff); err != nil {
					return nil, err
				}
				continue
			}
			s.stream = stream
		}
		ev, err := s.stream.Recv()
		if err == nil {
			if ev.Type == "DELETED" {
				return nil, s.fail(&ev.Application, "the application was deleted", false)
			}
			backoff = 200 * time.Millisecond
			return &ev.Application, nil
		}
		s.stream = nil
		if err := s.reconnect(ctx, "watch stream dropped", err, &backoff); err != nil {
			return nil, err
		}
	}
}

// reconnect handles a failed or dropped watch: errors that reconnecting cannot fix end the wait;
// otherwise it waits the backoff (doubling it, up to 5s) before the caller tries again.
func (s *session) reconnect(ctx context.Context, what string, err error, backoff *time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if fatal := s.fatalRPC(err); fatal != nil {
		return fatal
	}
	s.logf("%s (%v); reconnecting in %s", what, status.Convert(err).Message(), *backoff)
	if !sleep(ctx, *backoff) {
		return ctx.Err()
	}
	*backoff = min(*backoff*2, 5*time.Second)
	return nil
}

// fatalRPC returns the error for RPC failures that reconnecting cannot fix.
func (s *session) fatalRPC(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied, codes.NotFound, codes.InvalidArgument:
		return s.rpcError("watch", err)
	}
	return nil
}

// rpcError turns an RPC error into one that says what to check, without the token.
func (s *session) rpcError(what string, err error) error {
	st := status.Convert(err)
	msg := strings.ReplaceAll(st.Message(), s.o.Token, "***")
	switch st.Code() {
	case codes.Unauthenticated:
		return fmt.Errorf("argocd: %s %s: authentication failed: the token is invalid or expired (%s)", what, s.o.App, msg)
	case codes.PermissionDenied:
		return fmt.Errorf("argocd: %s %s: permission denied: the token's account may not %s this application (%s)", what, s.o.App, what, msg)
	case codes.NotFound:
		return fmt.Errorf("argocd: %s %s: application not found (%s)", what, s.o.App, msg)
	}
	return fmt.Errorf("argocd: %s %s: %s: %s", what, s.o.App, st.Code(), msg)
}

func (s *session) fail(app *v1alpha1.Application, reason string, timeout bool) error {
	e := &Error{App: s.o.App, Revision: s.o.Revision, Reason: reason, Timeout: timeout,
		Sync: string(app.Status.Sync.Status), Health: string(app.Status.Health.Status), Phase: "none", Unhealthy: unhealthy(app)}
	if op := app.Status.OperationState; op != nil {
		e.Phase = string(op.Phase)
	}
	return e
}

func (s *session) result(res *Result, app *v1alpha1.Application) *Result {
	res.SyncedRevision, res.Contained = s.judge.syncedRev, s.judge.contained
	res.Health = string(app.Status.Health.Status)
	if op := app.Status.OperationState; op != nil {
		res.Phase = string(op.Phase)
	}
	if !s.judge.syncedAt.IsZero() {
		res.Synced = s.judge.syncedAt.Sub(s.start)
	}
	res.Healthy = time.Since(s.start)
	if res.OperationStart == 0 {
		res.OperationStart = res.Synced
	}
	s.logf("%s is Synced and Healthy at %s after %s", s.o.App, short(res.SyncedRevision), res.Healthy.Round(time.Millisecond))
	return res
}

// log prints the application's state when it differs from the last line printed.
func (s *session) log(app *v1alpha1.Application) {
	line := describe(app)
	if line != s.lastLine {
		s.lastLine = line
		s.logf("%s: %s", s.o.App, line)
	}
}

func (s *session) logf(format string, args ...any) {
	if s.o.Log != nil {
		s.o.Log(strings.ReplaceAll(fmt.Sprintf(format, args...), s.o.Token, "***"))
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func ptr[T any](v T) *T { return &v }

// AppStatus is an application's current state.
type AppStatus struct {
	Sync, Revision, Health string
}

// Status reads an application's sync status, synced revision and health.
func Status(ctx context.Context, o Options) (*AppStatus, error) {
	conn, apps, err := connect(o)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	s := &session{o: o}
	app, err := apps.Get(ctx, &applicationpkg.ApplicationQuery{Name: &o.App, AppNamespace: s.ns()})
	if err != nil {
		return nil, s.rpcError("get", err)
	}
	return &AppStatus{Sync: string(app.Status.Sync.Status), Revision: app.Status.Sync.Revision, Health: string(app.Status.Health.Status)}, nil
}
