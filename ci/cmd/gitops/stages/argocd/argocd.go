// Package argocd makes Argo CD deploy the revision we pushed and waits until it runs, Healthy, with
// the argo-cd API client (as the argocd CLI connects). Unlike `argocd app wait` it checks *which*
// revision is synced, does not trust health read before the controller re-evaluated it after the
// sync, waits for operations of other runs to finish, and follows the application with the Watch
// stream (reconnecting when it drops) rather than a fixed poll.
package argocd

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/argoproj/argo-cd/v2/pkg/apiclient"
	accountpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/account"
	applicationpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/application"
	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
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
	// RepoURL is the GitOps repository as the applications name it, when not the URL we push to.
	RepoURL string
	// Revision is the commit SHA that the bump pushed.
	Revision string
	// Timeout bounds the whole wait (default 5 minutes).
	Timeout time.Duration
	// DegradedGrace is how long Degraded health may last before it fails the wait (default 30s).
	DegradedGrace time.Duration
	// RunID tags the sync operation we request (operation.info "run-id"); our operation is recognised
	// by it, never by comparing clocks. Default: a random one.
	RunID string
	// Match says how a revision Argo CD shows relates to our change: done means a revision that holds
	// our values is Synced and Healthy. Nil: only our exact revision counts.
	Match func(ctx context.Context, rev string) (Match, error)
	// Head, when set, reads the branch head just before a sync is requested: Argo CD is asked to sync
	// the head when it holds our values (never an older tree than the branch holds), and nothing is
	// requested when it no longer does (the outcome is Superseded). Nil: Revision is synced.
	Head func(ctx context.Context) (string, error)
	// Blame, when set, says whether a failure is our change's (see intent.Blamer): a failure is
	// rolled back only when objects our commit changed fail as our commit set them. Nil: the older
	// rule (our exact commit's operation, or objects it changed).
	Blame func(ctx context.Context, f intent.Failure) (ours bool, why string)
	// Older says the revision is older than the branch head on purpose (sync --allow-older): Argo CD
	// then shows the application OutOfSync against the head, so our operation's success at the exact
	// revision stands for Synced.
	Older bool
	// MultiSource says the application has several sources, ours at index Source (see Preflight).
	MultiSource bool
	Source      int
	// NoSync never requests a sync: the change is already in git (nothing was pushed), and the wait
	// only checks that it runs.
	NoSync bool
	// Now is the pipeline's clock (default time.Now); it is never compared with server timestamps.
	Now func() time.Time
	// Verify, when set, runs once our values are Synced and Healthy (post-deploy verification): its
	// error fails the deployment, as a failure of our change (unless nothing was pushed, NoSync).
	Verify func(ctx context.Context) error
	// Refreshed: a hard refresh of the application was done since the revision was pushed (Refresh);
	// the wait starts without one.
	Refreshed bool
	// ManualSync: the preflight found no auto-sync. The sync we request names the revision, and the
	// controller refreshes after it: no hard refresh is asked for first (unless auto-sync turns out
	// to be on, or nothing is to be synced, NoSync).
	ManualSync bool
	// Rollouts, when set, drives our Argo Rollouts through their pauses (see RolloutOptions). Nil:
	// a Rollout at a pause is waited on like any state that is not Healthy.
	Rollouts *RolloutOptions
	// Log receives one line per state change; nil discards them.
	Log func(string)
}

// Outcomes of a wait that ended without error.
const (
	// Deployed: our values are Synced and Healthy.
	Deployed = "deployed"
	// Superseded: a newer commit replaced our values before they ran; neither success nor failure.
	Superseded = "superseded"
	// Paused: our Rollouts wait at a pause on purpose (RolloutOptions.Manual); Reason says where.
	Paused = "paused"
)

// Result describes a deployment that is Synced and Healthy at the revision.
type Result struct {
	App      string
	Revision string // what we asked for
	// SyncedRevision is what Argo CD synced: Revision, or a newer commit that contains it (Contained).
	SyncedRevision string
	Contained      bool
	AutoSync       bool
	// Outcome is Deployed or Superseded; Reason says by whom and with what when superseded.
	Outcome, Reason string
	Phase           string
	Health          string
	// Previous is the revision that ran before our change's operation ("" unknown).
	Previous string
	// OurOperation: the operation that synced our values carries our run id (we asked for it,
	// recognised by the id, never by clocks); false when the controller's auto-sync or someone
	// else's operation did.
	OurOperation bool
	// Durations since the start: refresh done, our operation seen, synced at the revision, healthy.
	Refresh, OperationStart, Synced, Healthy time.Duration
	// Steps are the pauses of our Rollouts, as decided.
	Steps []Step
	// Rollouts are our Rollouts as they stood at the end.
	Rollouts []RolloutState
}

// Error is a failed or timed-out wait; it names the application, the revision, the last phase and
// health, and every resource that is not Healthy.
type Error struct {
	App, Revision, Phase, Health, Sync string
	Reason                             string
	Unhealthy                          []string
	Timeout                            bool
	// Attributable: our change caused the failure (our operation failed, or resources it changed
	// went Degraded). Only such failures are rolled back.
	Attributable bool
	// Aborted: our Rollouts were aborted at a canary or blue-green step (by our checks, or by Argo
	// Rollouts itself): the change failed before it reached everyone.
	Aborted bool
	// Rollouts are our Rollouts as they stood.
	Rollouts []RolloutState
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
// controller to do so), and waits until a revision holding our values is Synced and Healthy. A newer
// commit that replaced our values ends the wait with the outcome Superseded and no error.
func Sync(ctx context.Context, o Options) (res *Result, err error) {
	ctx, span := telemetry.Start(ctx, "argocd.sync", telemetry.Attr("argocd.app", o.App), telemetry.Attr("argocd.revision", o.Revision),
		telemetry.Attr("argocd.server", o.Server), attribute.Bool("argocd.no_sync", o.NoSync))
	defer func() {
		if res != nil {
			span.SetAttributes(telemetry.Attr("argocd.outcome", res.Outcome), telemetry.Attr("argocd.synced_revision", res.SyncedRevision),
				telemetry.Attr("argocd.health", res.Health), telemetry.Attr("argocd.phase", res.Phase), attribute.Bool("argocd.auto_sync", res.AutoSync))
			if res.Reason != "" {
				span.SetAttributes(telemetry.Attr("argocd.reason", res.Reason))
			}
		}
		var we *Error
		if errors.As(err, &we) {
			span.SetAttributes(attribute.Bool("argocd.attributable", we.Attributable), telemetry.Attr("argocd.health", we.Health), telemetry.Attr("argocd.phase", we.Phase))
		}
		telemetry.End(span, err)
	}()
	if err := o.validate(); err != nil {
		return nil, err
	}
	o = o.defaults()
	caller := ctx
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()

	conn, apps, err := connect(o)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	s := &session{o: o, apps: apps, start: start, ctx: ctx, matches: map[string]Match{}, span: span, decided: map[string]bool{}}
	source := -1
	if o.MultiSource {
		source = o.Source
	}
	s.judge = &judge{runID: o.RunID, source: source, match: s.match, grace: o.DegradedGrace, older: o.Older}
	if o.Blame != nil {
		// Blame reads git after the wait may have timed out: it gets its own time.
		s.judge.blame = func(f intent.Failure) (bool, string) {
			bctx, cancel := context.WithTimeout(context.WithoutCancel(caller), 30*time.Second)
			defer cancel()
			return o.Blame(bctx, f)
		}
	}
	res = &Result{App: o.App, Revision: o.Revision}

	// 1. Hard refresh: the controller compares against the new commit now, not at its next poll
	// (unless the caller had it done already, while it prepared the wait).
	hard := !o.Refreshed && (!o.ManualSync || o.NoSync)
	rctx, refresh := telemetry.Start(ctx, "argocd.refresh", attribute.Bool("argocd.hard", hard))
	app, err := s.get(rctx, hard)
	if err == nil && !hard && !o.Refreshed && app.Spec.SyncPolicy != nil && app.Spec.SyncPolicy.Automated != nil {
		app, err = s.get(rctx, true) // auto-sync after all: the controller must see the commit now
	}
	telemetry.End(refresh, err)
	if err != nil {
		return nil, s.rpcError("get", err)
	}
	res.Refresh = time.Since(start)
	res.AutoSync = app.Spec.SyncPolicy != nil && app.Spec.SyncPolicy.Automated != nil
	s.judge.previous = s.previous(app)
	s.log(app)

	// 2.–3. Without auto-sync we request the sync of the branch head when it still holds our values,
	// after any operation in flight (unless the values already run: then there is nothing to sync).
	if !res.AutoSync && !o.NoSync {
		if out := s.judge.observe(app, o.Now()); out.verdict == waiting {
			qctx, request := telemetry.Start(ctx, "argocd.request-sync", telemetry.Attr("argocd.run_id", o.RunID))
			var replaced string
			app, replaced, err = s.requestSync(qctx, app)
			telemetry.End(request, err)
			if err != nil {
				return nil, err
			}
			if replaced != "" {
				return s.result(res, app, Superseded, replaced), nil
			}
		}
	}

	// 4.–5. Follow the application until the judge says done, failed or superseded.
	nctx, stopNudging := context.WithCancel(ctx)
	defer stopNudging()
	setStale := s.nudger(nctx)
	last := app
	for out := s.judge.observe(app, o.Now()); ; {
		out, err = s.drive(ctx, last, out, res)
		if err != nil {
			return nil, err
		}
		switch out.verdict {
		case done:
			return s.result(res, last, Deployed, ""), nil
		case pausedAt:
			return s.result(res, last, Paused, out.reason), nil
		case superseded:
			return s.result(res, last, Superseded, out.reason), nil
		case failed:
			err := s.fail(last, out.reason, false, out.attributable)
			err.(*Error).Aborted = out.aborted
			return nil, err
		}
		setStale(cmp.Or(s.judge.staleSince, s.rolloutsStale))
		next, err := s.next(ctx, last)
		if err != nil {
			if caller.Err() != nil {
				return nil, s.fail(last, "cancelled while waiting", false, false)
			}
			if ctx.Err() != nil {
				out := s.judge.timedOut(last, fmt.Sprintf("no revision holding our values was Synced and Healthy within %s", o.Timeout))
				return nil, s.fail(last, out.reason, true, out.attributable)
			}
			return nil, err
		}
		last = next
		s.log(last)
		if res.OperationStart == 0 && last.Status.OperationState != nil && (s.judge.ours(&last.Status.OperationState.Operation) ||
			s.match(s.judge.operationRevision(last.Status.OperationState)).Ours) && inFlight(last) {
			res.OperationStart = time.Since(start)
		}
		out = s.judge.observe(last, o.Now())
	}
}

func (o Options) defaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.DegradedGrace <= 0 {
		o.DegradedGrace = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RunID == "" {
		o.RunID = "wanderlust-" + randomSuffix()
	}
	return o
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

// get reads the application, with a hard refresh when hard.
func (s *session) get(ctx context.Context, hard bool) (*v1alpha1.Application, error) {
	q := &applicationpkg.ApplicationQuery{Name: &s.o.App, AppNamespace: s.ns()}
	if hard {
		q.Refresh = ptr(string(v1alpha1.RefreshTypeHard))
	}
	return s.apps.Get(ctx, q)
}

// Refresh asks Argo CD for a hard refresh of the application (compare against the branch now, not at
// the next poll) and returns when it is done; a caller that prepares the wait meanwhile then sets
// Options.Refreshed.
func Refresh(ctx context.Context, o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	conn, apps, err := connect(o)
	if err != nil {
		return err
	}
	defer conn.Close()
	s := &session{o: o}
	ctx, span := telemetry.Start(ctx, "argocd.refresh", telemetry.Attr("argocd.app", o.App))
	_, err = apps.Get(ctx, &applicationpkg.ApplicationQuery{Name: &o.App, AppNamespace: s.ns(), Refresh: ptr(string(v1alpha1.RefreshTypeHard))})
	telemetry.End(span, err)
	if err != nil {
		return s.rpcError("refresh", err)
	}
	return nil
}

// newClient builds the API client like the argocd CLI, ignoring any local argocd config file.
func newClient(o Options) (apiclient.Client, error) {
	c, err := apiclient.NewClient(&apiclient.ClientOptions{
		ServerAddr: o.Server, AuthToken: o.Token, PlainText: o.PlainText, Insecure: o.Insecure, GRPCWeb: o.GRPCWeb,
		ConfigPath: filepath.Join(os.TempDir(), "wanderlust-argocd-no-config", "config"),
		UserAgent:  "wanderlust-pipeline",
	})
	if err != nil {
		return nil, unreachable(o, err)
	}
	return c, nil
}

// unreachable says that the server could not be reached, and what to check.
func unreachable(o Options, err error) error {
	return fmt.Errorf("argocd: cannot reach %s (%s): check --argocd-server, the TLS flags (--argocd-plain-text, --insecure, --grpc-web) and the network",
		o.Server, strings.ReplaceAll(err.Error(), o.Token, "***"))
}

// connect opens the application service.
func connect(o Options) (io.Closer, applicationpkg.ApplicationServiceClient, error) {
	c, err := newClient(o)
	if err != nil {
		return nil, nil, err
	}
	conn, apps, err := c.NewApplicationClient()
	if err != nil {
		return nil, nil, unreachable(o, err)
	}
	return conn, apps, nil
}

// newAccountClient opens the account service (for can-i).
func newAccountClient(o Options) (io.Closer, accountpkg.AccountServiceClient, error) {
	c, err := newClient(o)
	if err != nil {
		return nil, nil, err
	}
	conn, acc, err := c.NewAccountClient()
	if err != nil {
		return nil, nil, unreachable(o, err)
	}
	return conn, acc, nil
}

// statusOf is an RPC error's code name.
func statusOf(err error) (string, bool) {
	st, ok := status.FromError(err)
	return st.Code().String(), ok
}

func errMessage(err error) string { return status.Convert(err).Message() }

// session is one wait.
type session struct {
	o        Options
	apps     applicationpkg.ApplicationServiceClient
	start    time.Time
	judge    *judge
	stream   applicationpkg.ApplicationService_WatchClient
	polling  bool
	lastLine string
	// ctx is the wait's: every git read made to judge a revision uses it.
	ctx context.Context
	// span is the wait's span: each state change is an event on it.
	span trace.Span

	mu      sync.Mutex
	matches map[string]Match

	// decided are the pauses of our Rollouts already decided (pauseKey); steps counts them.
	decided map[string]bool
	steps   int
	// rolloutsStale is when our values first ran while our Rollouts had not yet taken them up: the
	// wait then asks for refreshes, as for stale health.
	rolloutsStale time.Time
	rollouts      []RolloutState
}

func (s *session) ns() *string {
	if s.o.AppNamespace == "" {
		return nil
	}
	return &s.o.AppNamespace
}

// match says how rev relates to our change (cached per revision; a failed lookup is retried on the
// next state and counts as not ours meanwhile).
func (s *session) match(rev string) Match {
	if rev == "" {
		return Match{}
	}
	if rev == s.o.Revision || (len(s.o.Revision) >= 7 && strings.HasPrefix(rev, s.o.Revision)) {
		return Match{Ours: true, Exact: true}
	}
	if s.o.Match == nil {
		return Match{}
	}
	s.mu.Lock()
	m, seen := s.matches[rev]
	s.mu.Unlock()
	if seen {
		return m
	}
	m, err := s.o.Match(s.ctx, rev)
	if err != nil {
		s.logf("cannot tell whether %s holds our change: %v", short(rev), err)
		return Match{}
	}
	s.mu.Lock()
	s.matches[rev] = m
	s.mu.Unlock()
	return m
}

// nudger asks the controller to re-evaluate the application when our sync is done but its health has
// not been evaluated since. Status timestamps have one-second precision, so the evaluation must land
// in a later second; rather than wait for the controller's next pass, it requests a normal refresh a
// second after we first saw the stale state, then once a second while it stays stale. Both times are
// the pipeline's own clock: a skewed clock changes nothing.
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
			now := s.o.Now()
			due := !staleSince.IsZero() && now.Sub(staleSince) >= time.Second && now.Sub(nudged) >= time.Second
			if due {
				nudged = now
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

// requestSync asks for the sync of our revision — or of the branch head read just before, when it
// holds our values — first waiting for another operation to finish. When the head no longer holds
// our values it asks for nothing and returns why (superseded). When the server says another
// operation won the race, it backs off (jittered, doubling) before asking again. It returns the
// latest state seen.
func (s *session) requestSync(ctx context.Context, app *v1alpha1.Application) (*v1alpha1.Application, string, error) {
	announced := false
	backoff := 500 * time.Millisecond
	for {
		if inFlight(app) {
			if !announced {
				s.logf("another operation is in flight; waiting for it to finish")
				announced = true
			}
			next, err := s.next(ctx, app)
			if err != nil {
				if ctx.Err() != nil {
					return nil, "", s.fail(app, "another operation did not finish in time", true, false)
				}
				return nil, "", err
			}
			app = next
			s.log(app)
			continue
		}
		rev, replaced, err := s.syncTarget(ctx)
		if err != nil || replaced != "" {
			return app, replaced, err
		}
		var prune *bool
		if p := app.Spec.SyncPolicy; p != nil && p.Automated != nil {
			prune = &p.Automated.Prune
		}
		req := &applicationpkg.ApplicationSyncRequest{Name: &s.o.App, AppNamespace: s.ns(), Prune: prune,
			Infos: []*v1alpha1.Info{{Name: "run-id", Value: s.o.RunID}}}
		if s.o.MultiSource {
			req.Revisions, req.SourcePositions = []string{rev}, []int64{int64(s.o.Source + 1)}
		} else {
			req.Revision = &rev
		}
		_, err = s.apps.Sync(ctx, req)
		if err == nil {
			if rev != s.o.Revision {
				s.logf("sync of %s requested, the branch head, which holds our values (run %s)", short(rev), s.o.RunID)
			} else {
				s.logf("sync of %s requested (run %s)", short(rev), s.o.RunID)
			}
			return app, "", nil
		}
		st, ok := status.FromError(err)
		if !ok || st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "another operation is already in progress") {
			return nil, "", s.rpcError("sync", err)
		}
		// Lost a race with another operation: back off, then look again.
		d := backoff/2 + mrand.N(backoff/2+1)
		s.logf("another operation started first; asking again in %s", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return nil, "", s.fail(app, "another operation did not finish in time", true, false)
		}
		backoff = min(backoff*2, 8*time.Second)
		if app, err = s.apps.Get(ctx, &applicationpkg.ApplicationQuery{Name: &s.o.App, AppNamespace: s.ns()}); err != nil {
			return nil, "", s.rpcError("get", err)
		}
	}
}

// syncTarget is the revision to ask Argo CD for: the branch head as read now when it holds our
// values, our revision without a Head reader; replaced says why nothing is to be asked for.
func (s *session) syncTarget(ctx context.Context) (rev, replaced string, err error) {
	if s.o.Head == nil {
		return s.o.Revision, "", nil
	}
	head, err := s.o.Head(ctx)
	if err != nil {
		return "", "", fmt.Errorf("argocd: read the branch head before requesting a sync of %s: %w", s.o.App, err)
	}
	if head == s.o.Revision {
		return head, "", nil
	}
	m := s.match(head)
	switch {
	case m.Ours:
		return head, "", nil
	case m.Superseded != "":
		return "", m.Superseded, nil
	}
	return "", fmt.Sprintf("the branch head %s does not hold our values and does not contain our commit %s (history rewritten?); nothing was synced", short(head), short(s.o.Revision)), nil
}

// previous is the revision that ran before our change's operation: the newest deployment in the
// application's history that does not hold our values ("" when there is none).
func (s *session) previous(app *v1alpha1.Application) string {
	h := app.Status.History
	for i := len(h) - 1; i >= 0; i-- {
		rev := h[i].Revision
		if s.judge.source >= 0 {
			rev = ""
			if s.judge.source < len(h[i].Revisions) {
				rev = h[i].Revisions[s.judge.source]
			}
		}
		if rev != "" && !s.match(rev).Ours {
			return rev
		}
	}
	return ""
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
				return nil, s.fail(&ev.Application, "the application was deleted", false, false)
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
		if what == "get" {
			// Argo CD answers "permission denied" for applications that do not exist, too.
			return fmt.Errorf("argocd: application %s not found, or the token may not get it (Argo CD answers %q for both); check --app, --app-namespace and the token's RBAC", s.o.App, msg)
		}
		return fmt.Errorf("argocd: %s %s: permission denied: the token's account may not %s this application (%s)", what, s.o.App, what, msg)
	case codes.NotFound:
		return fmt.Errorf("argocd: %s %s: application not found (%s)", what, s.o.App, msg)
	}
	return fmt.Errorf("argocd: %s %s: %s: %s", what, s.o.App, st.Code(), msg)
}

func (s *session) fail(app *v1alpha1.Application, reason string, timeout, attributable bool) error {
	e := &Error{App: s.o.App, Revision: s.o.Revision, Reason: reason, Timeout: timeout, Attributable: attributable,
		Sync: string(app.Status.Sync.Status), Health: string(app.Status.Health.Status), Phase: "none", Unhealthy: unhealthy(app), Rollouts: s.rollouts}
	if op := app.Status.OperationState; op != nil {
		e.Phase = string(op.Phase)
	}
	return e
}

func (s *session) result(res *Result, app *v1alpha1.Application, outcome, reason string) *Result {
	res.Outcome, res.Reason, res.Previous = outcome, reason, s.judge.previous
	if outcome == Superseded {
		res.SyncedRevision = s.judge.syncRevision(app)
		res.Health = string(app.Status.Health.Status)
		s.logf("%s: our change was superseded: %s", s.o.App, reason)
		return res
	}
	res.SyncedRevision, res.Contained = s.judge.syncedRev, !s.judge.syncedBy.Exact
	res.Health = string(app.Status.Health.Status)
	if op := app.Status.OperationState; op != nil {
		res.Phase = string(op.Phase)
		res.OurOperation = s.judge.ours(&op.Operation)
	}
	if !s.judge.syncedAt.IsZero() {
		res.Synced = s.judge.syncedAt.Sub(s.start)
	}
	res.Healthy = time.Since(s.start)
	if res.OperationStart == 0 {
		res.OperationStart = res.Synced
	}
	res.Rollouts = s.rollouts
	if outcome == Paused {
		s.logf("%s is Synced at %s and paused on purpose: %s", s.o.App, short(res.SyncedRevision), reason)
		return res
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
		if s.span != nil {
			phase := "none"
			if op := app.Status.OperationState; op != nil {
				phase = string(op.Phase)
			}
			s.span.AddEvent("state", trace.WithAttributes(telemetry.Attr("argocd.phase", phase), telemetry.Attr("argocd.sync", string(app.Status.Sync.Status)),
				telemetry.Attr("argocd.sync_revision", app.Status.Sync.Revision), telemetry.Attr("argocd.health", string(app.Status.Health.Status))))
		}
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

// randomSuffix is 12 random hex digits.
func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

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
	app, err := get(ctx, apps, o)
	if err != nil {
		return nil, err
	}
	return &AppStatus{Sync: string(app.Status.Sync.Status), Revision: app.Status.Sync.Revision, Health: string(app.Status.Health.Status)}, nil
}

// get reads the application once, saying what to check when it cannot.
func get(ctx context.Context, apps applicationpkg.ApplicationServiceClient, o Options) (*v1alpha1.Application, error) {
	s := &session{o: o}
	app, err := apps.Get(ctx, &applicationpkg.ApplicationQuery{Name: &o.App, AppNamespace: s.ns()})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("argocd: server %s did not answer in time: check --argocd-server and the network", o.Server)
		}
		return nil, s.preflightError(err)
	}
	return app, nil
}
