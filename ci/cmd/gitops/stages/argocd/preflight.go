package argocd

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	accountpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/account"
	applicationpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/application"
	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// Target is what the application must deploy from: the repository, path and branch we push to
// (an empty Path accepts any path of the repository).
type Target struct {
	RepoURL, Path, Branch string
	// DefaultBranch is the remote's HEAD branch (what targetRevision "HEAD" or "" resolves to).
	DefaultBranch string
	// Rollouts: what we deploy runs Argo Rollouts, which the wait resumes and aborts (the token must be
	// allowed those actions). The application's live Argo Rollouts count too.
	Rollouts bool
}

// App is what the preflight learned of the application.
type App struct {
	Project  string
	AutoSync bool
	// MultiSource and Source: the application has several sources, ours at index Source.
	MultiSource bool
	Source      int
	// Path is our source's path in the repository.
	Path string
	// Running is the revision of our source that the application's last deployment synced ("" when
	// it was never deployed).
	Running string
}

// Preflight checks, before anything is pushed, that the server answers, the token is valid and may
// get and sync the application, the application exists and deploys from target (single- or
// multi-source), and no sync window blocks a sync now. Each failure is a clear error; nothing is
// changed anywhere. It bounds itself to 30 seconds.
func Preflight(ctx context.Context, o Options, t Target) (info *App, err error) {
	ctx, span := telemetry.Start(ctx, "argocd.preflight", telemetry.Attr("argocd.app", o.App), telemetry.Attr("argocd.server", o.Server))
	defer func() {
		if info != nil {
			span.SetAttributes(telemetry.Attr("argocd.project", info.Project), attribute.Bool("argocd.multi_source", info.MultiSource), attribute.Bool("argocd.auto_sync", info.AutoSync))
		}
		telemetry.End(span, err)
	}()
	if err := gitops.CheckServer(o.Server); err != nil {
		return nil, err
	}
	switch {
	case o.Token == "":
		return nil, errors.New("argocd: an auth token is required")
	case o.App == "":
		return nil, errors.New("argocd: an application name is required")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, apps, err := connect(o)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	app, err := get(ctx, apps, o)
	if err != nil {
		return nil, err
	}
	s := &session{o: o, apps: apps}
	if app.DeletionTimestamp != nil {
		return nil, fmt.Errorf("argocd: application %s is being deleted", o.App)
	}
	res := &App{Project: app.Spec.GetProject(), AutoSync: app.Spec.SyncPolicy != nil && app.Spec.SyncPolicy.Automated != nil}

	// RBAC: may this token sync it? (Getting it worked.)
	aconn, accounts, err := newAccountClient(o)
	if err != nil {
		return nil, err
	}
	defer aconn.Close()
	sub := res.Project + "/" + o.App
	if o.AppNamespace != "" {
		sub = res.Project + "/" + o.AppNamespace + "/" + o.App
	}
	can, err := accounts.CanI(ctx, &accountpkg.CanIRequest{Resource: "applications", Action: "sync", Subresource: sub})
	if err != nil {
		return nil, s.preflightError(err)
	}
	if can.Value != "yes" {
		return nil, fmt.Errorf("argocd: permission denied: the token may get %s but not sync it (RBAC: applications, sync, %s); grant it in argocd-rbac-cm or the project's roles", o.App, sub)
	}

	// Rollouts are resumed and aborted through resource actions: may this token run them? Argo CD's
	// can-i knows no resource action (v2.14 answers InvalidArgument), so each is asked of
	// RunResourceAction on an object that is not the application's: the server checks RBAC first
	// (PermissionDenied), then answers that no such object exists — nothing is run.
	if t.Rollouts || slices.ContainsFunc(app.Status.Resources, isRollout) {
		for _, action := range RolloutActions {
			if err := s.mayRun(ctx, action); err != nil {
				return nil, err
			}
		}
	}

	// Does it deploy what we push?
	if err := tracks(app, t, res); err != nil {
		return nil, err
	}
	if h := app.Status.History; len(h) > 0 {
		res.Running = h[len(h)-1].Revision
		if res.MultiSource {
			res.Running = ""
			if revs := h[len(h)-1].Revisions; res.Source < len(revs) {
				res.Running = revs[res.Source]
			}
		}
	}

	// Sync windows, for the kind of sync this deploy relies on: the controller's auto-sync for an
	// auto-sync application, our manual sync request otherwise. (The API's "can sync" answers for a
	// manual sync only: a deny window with manualSync lets us through, but not the controller.)
	w, err := apps.GetApplicationSyncWindows(ctx, &applicationpkg.ApplicationSyncWindowsQuery{Name: &o.App, AppNamespace: s.ns()})
	if err != nil {
		return nil, s.preflightError(err)
	}
	allowed := w.CanSync == nil || *w.CanSync
	kind := "a manual sync"
	if res.AutoSync {
		allowed, kind = autoSyncAllowed(w), "auto-sync"
	}
	if !allowed {
		var active []string
		for _, a := range w.ActiveWindows {
			if a.Kind != nil && a.Schedule != nil && a.Duration != nil {
				active = append(active, fmt.Sprintf("%s %q for %s (manualSync %v)", *a.Kind, *a.Schedule, *a.Duration, a.ManualSync != nil && *a.ManualSync))
			}
		}
		if len(active) == 0 {
			active = append(active, "none: an allow window exists and none is open")
		}
		return nil, fmt.Errorf("argocd: a sync window of project %s blocks %s of %s now (active: %s); deploy outside it", res.Project, kind, o.App, strings.Join(active, ", "))
	}
	return res, nil
}

// autoSyncAllowed applies Argo CD's rule for syncs that are not manual (SyncWindows.CanSync(false))
// to the application's windows: an open deny window blocks; else an open allow window allows; else
// any allow window (closed now) blocks; no window allows.
func autoSyncAllowed(w *applicationpkg.ApplicationSyncWindowsResponse) bool {
	key := func(a *applicationpkg.ApplicationSyncWindow) string {
		return fmt.Sprint(deref(a.Kind), "|", deref(a.Schedule), "|", deref(a.Duration))
	}
	open := map[string]bool{}
	allowOpen := false
	for _, a := range w.ActiveWindows {
		open[key(a)] = true
		switch deref(a.Kind) {
		case "deny":
			return false
		case "allow":
			allowOpen = true
		}
	}
	if allowOpen {
		return true
	}
	for _, a := range w.AssignedWindows {
		if deref(a.Kind) == "allow" && !open[key(a)] {
			return false
		}
	}
	return true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// tracks checks that one of the application's sources is our repository and path, on our branch.
func tracks(app *v1alpha1.Application, t Target, res *App) error {
	sources := []v1alpha1.ApplicationSource{}
	if app.Spec.HasMultipleSources() {
		sources, res.MultiSource = app.Spec.Sources, true
	} else if app.Spec.Source != nil {
		sources = []v1alpha1.ApplicationSource{*app.Spec.Source}
	}
	var seen []string
	for i, src := range sources {
		seen = append(seen, fmt.Sprintf("%s path %q at %q", src.RepoURL, src.Path, src.TargetRevision))
		if git.SameRepo(src.RepoURL, t.RepoURL) && src.Path != "" && (t.Path == "" || path.Clean(src.Path) == path.Clean(t.Path)) {
			if !sameBranch(src.TargetRevision, t) {
				return fmt.Errorf("argocd: application %s deploys %s from %q, but we push to branch %q: it would never run our commit (fix its targetRevision or --branch)",
					app.Name, t.Path, src.TargetRevision, t.Branch)
			}
			res.Source, res.Path = i, path.Clean(src.Path)
			return nil
		}
	}
	return fmt.Errorf("argocd: application %s does not deploy %s from %s (its sources: %s); check --app and --repo (or --argocd-repo-url, when the applications name the repository by another URL than the one we push to)",
		app.Name, t.Path, t.RepoURL, strings.Join(seen, "; "))
}

func sameBranch(rev string, t Target) bool {
	rev = strings.TrimPrefix(rev, "refs/heads/")
	if rev == "" || rev == "HEAD" {
		return t.DefaultBranch != "" && t.DefaultBranch == t.Branch
	}
	return rev == t.Branch
}

// preflightError says what to check for an RPC error of the preflight.
func (s *session) preflightError(err error) error {
	if st, ok := statusOf(err); ok && st == "Unavailable" {
		return fmt.Errorf("argocd: cannot reach %s (%s): check --argocd-server, TLS flags (--argocd-plain-text, --insecure, --grpc-web) and the network",
			s.o.Server, strings.ReplaceAll(errMessage(err), s.o.Token, "***"))
	}
	return s.rpcError("get", err)
}
