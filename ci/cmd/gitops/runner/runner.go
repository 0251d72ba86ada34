// Package runner runs the pipeline's deploy and promote against the sandbox's services from inside
// the engine's network (the runner container binds them): it pushes the built images' tarballs to
// the in-engine registry, logs in to Argo CD as admin, and calls the deploy stage as production does.
package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/argocd"
	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/deploy"
	"wanderlust.dev/pipeline/ci/sandbox"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// Options say where the sandbox's services are and what to deploy.
type Options struct {
	// Registry is the in-engine registry, host:port (plain HTTP); images go to
	// <Registry>/wanderlust-app/wanderlust-<name>.
	Registry string
	// Images are the built images' tarballs by name (backend, frontend); Version their tag.
	Images  map[string]string
	Version string
	// Repo is the GitOps repository URL; GitUser and GitPassword its login.
	Repo, GitUser, GitPassword string
	// ArgoCD is the API server, host:port (plain text); ArgoPassword the admin password.
	ArgoCD, ArgoPassword string
	// SMTP is Mailpit's SMTP, host:port (no login: it takes mail from the engine's network only);
	// MailTo the recipients.
	SMTP   string
	MailTo []string
	// Timeout bounds the wait for Synced and Healthy.
	Timeout time.Duration
	// Log gets progress lines.
	Log func(string)
	// Report is the run's report so far (the module's build); nil starts one.
	Report *report.Run
}

// Deploy pushes the images and deploys them to env, as `deploy` does: verify, bump (digests),
// commit and push, sync and wait, roll back on failure, mail the report — all in one report, after
// the module's build.
func Deploy(ctx context.Context, o Options, env string) (*report.Run, error) {
	rep := o.Report
	if rep == nil {
		rep = report.New("Wanderlust deploy", env)
	}
	sctx, end := rep.Start(ctx, "publish")
	refs, err := push(sctx, o)
	out := map[string]string{}
	for _, r := range refs {
		out[manifest.LastElem(strings.SplitN(r, ":", 2)[0])] = r
	}
	end(out, err)
	if err != nil {
		rep.Finish(err)
		return rep, err
	}
	argo, mail, err := o.services(ctx, "wanderlust-"+env)
	if err != nil {
		rep.Finish(err)
		return rep, err
	}
	return deploy.Run(ctx, deploy.Options{Images: refs, PinDigest: true, Registry: registry.Auth{PlainHTTP: true},
		Bump: bump.Options{Git: o.git(), Env: env}, Argo: argo, Rollback: true, Notify: mail}, rep)
}

// MailCount is how many messages the sandbox's Mailpit holds, from its API at api (host:port):
// GET /api/v1/messages answers {"total": …}.
func MailCount(ctx context.Context, api string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+api+"/api/v1/messages?limit=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("Mailpit's API: %s", resp.Status)
	}
	var list struct {
		Total *int `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || list.Total == nil {
		return 0, fmt.Errorf("Mailpit's API: no message count in its answer (%v)", err)
	}
	return *list.Total, nil
}

// Promote promotes what runs in from to to, as `promote` does. The sandbox's images carry no
// evidence (nothing signs them here): the gate is skipped, and the report says so.
func Promote(ctx context.Context, o Options, from, to string) (*report.Run, error) {
	argo, mail, err := o.services(ctx, "wanderlust-"+to)
	if err != nil {
		return nil, err
	}
	return deploy.Promote(ctx, deploy.PromoteOptions{From: from, To: to, Git: o.git(), Argo: *argo,
		FromApp: "wanderlust-" + from, ToApp: "wanderlust-" + to, Rollback: true, Notify: mail,
		Registry: registry.Auth{PlainHTTP: true},
		Evidence: &deploy.Evidence{AllowUnverified: "sandbox: its images are not signed"}})
}

func (o Options) git() git.Options {
	return git.Options{URL: o.Repo, Auth: git.Auth{Username: o.GitUser, Token: o.GitPassword}}
}

// services logs in to Argo CD and returns its options and the mail settings.
func (o Options) services(ctx context.Context, app string) (*argocd.Options, *notify.Options, error) {
	token, err := sandbox.Login(ctx, o.ArgoCD, o.ArgoPassword)
	if err != nil {
		return nil, nil, err
	}
	argo := &argocd.Options{Server: o.ArgoCD, Token: token, PlainText: true, App: app, Timeout: o.Timeout, DegradedGrace: 5 * time.Second, Log: o.Log}
	host, port, ok := strings.Cut(o.SMTP, ":")
	if !ok {
		return nil, nil, fmt.Errorf("sandbox: mail address %q: want host:port", o.SMTP)
	}
	var p int
	if _, err := fmt.Sscan(port, &p); err != nil {
		return nil, nil, fmt.Errorf("sandbox: mail port %q", port)
	}
	mail := &notify.Options{Host: host, Port: p, TLS: notify.NoTLS,
		From: "sandbox@wanderlust.invalid", To: o.MailTo}
	return argo, mail, nil
}

// push writes each tarball to the registry and returns the references, sorted by name.
func push(ctx context.Context, o Options) ([]string, error) {
	var refs []string
	for _, n := range slices.Sorted(maps.Keys(o.Images)) {
		img, err := tarball.ImageFromPath(o.Images[n], nil)
		if err != nil {
			return nil, fmt.Errorf("sandbox: image %s: %w", n, err)
		}
		ref := fmt.Sprintf("%s/wanderlust-app/wanderlust-%s:%s", o.Registry, n, o.Version)
		tag, err := name.NewTag(ref, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s: %w", ref, err)
		}
		if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
			return nil, fmt.Errorf("sandbox: push %s: %w", ref, err)
		}
		refs = append(refs, ref)
	}
	return refs, nil
}
