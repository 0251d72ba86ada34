// Package deploy composes the GitOps half of the pipeline, which needs no container: verify the
// images and resolve their digests → bump the environment's manifests (commit + push) → sync Argo CD
// and wait for that commit → roll back on failure → email the run report. It also promotes what runs
// in one environment to the next. Every stage can be skipped; the report records each one.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/notify"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// Options configure a deployment.
type Options struct {
	// Images to deploy, "repo:tag" (or "repo:tag@sha256:…"); or Updates, given as manifest updates.
	Images  []string
	Updates []manifest.Update
	// Registry logs in to verify the images; SkipVerify deploys without checking them.
	Registry   registry.Auth
	SkipVerify bool
	// PinDigest writes tag@digest into the manifests (needs verification).
	PinDigest bool
	// Bump says where and how to commit (its Updates are derived from Images).
	Bump bump.Options
	// DryRun stops after computing the manifest change (the report holds the diff).
	DryRun bool
	// Argo, when set, syncs and waits (its Revision is the pushed SHA); nil skips the sync.
	Argo *argocd.Options
	// Rollback reverts the commit when the rollout fails.
	Rollback bool
	// Notify, when set, emails the report whatever the result.
	Notify *notify.Options
	// SourceCommitTime is when the application commit was made (for the lead time).
	SourceCommitTime time.Time
}

// Run deploys and returns the report; the error is the deployment's (a failed email is only reported).
func Run(ctx context.Context, o Options, r *report.Run) (*report.Run, error) {
	if r == nil {
		r = report.New("Wanderlust deploy", o.Bump.Env)
	}
	if !o.SourceCommitTime.IsZero() {
		t := o.SourceCommitTime
		r.DORA.SourceCommitTime = &t
	}
	err := run(ctx, o, r)
	r.Finish(err)
	sendReport(ctx, o.Notify, r)
	return r, err
}

func run(ctx context.Context, o Options, r *report.Run) error {
	if len(o.Images) == 0 && len(o.Updates) == 0 {
		return errors.New("deploy: no images to deploy")
	}
	refs := o.Images
	if o.SkipVerify || len(refs) == 0 {
		r.Skip("verify", "--skip-verify")
	} else {
		end := r.Begin("verify")
		imgs, err := registry.Resolve(ctx, o.Images, o.Registry)
		out := map[string]string{}
		for _, i := range imgs {
			out[lastElem(i.Repository())] = i.Digest
			if o.PinDigest {
				refs = replace(refs, i.Ref, i.Pinned())
			}
		}
		end(out, err)
		if err != nil {
			return err
		}
	}

	bo := o.Bump
	bo.Updates = o.Updates
	for _, ref := range refs {
		u, err := updateFor(ref)
		if err != nil {
			return err
		}
		bo.Updates = append(bo.Updates, u)
	}
	bo.Git.DryRun = o.DryRun
	end := r.Begin("bump")
	res, err := bump.Run(ctx, bo)
	out := map[string]string{}
	if res != nil {
		out["sha"], out["changes"] = res.SHA, strings.ReplaceAll(res.Summary, "\n", "; ")
		if o.DryRun {
			out["diff"] = res.Diff
		}
	}
	end(out, err)
	if err != nil || o.DryRun {
		if o.DryRun && o.Argo != nil {
			r.Skip("sync", "--dry-run")
		}
		return err
	}

	if o.Argo == nil {
		r.Skip("sync", "no Argo CD application given")
		return nil
	}
	ao := *o.Argo
	ao.Revision = res.SHA
	if ao.Contains == nil {
		ao.Contains = func(ctx context.Context, d, a string) (bool, error) { return git.Contains(ctx, bo.Git, d, a) }
	}
	var undo argocd.Rollback
	if o.Rollback {
		undo = func(ctx context.Context, reason string) (string, error) {
			rv, err := git.Revert(ctx, bo.Git, res.SHA, reason)
			if err != nil {
				return "", err
			}
			return rv.SHA, nil
		}
	}
	end = r.Begin("sync")
	outcome, err := argocd.SyncOrRollback(ctx, ao, undo)
	out = map[string]string{"app": ao.App, "revision": res.SHA}
	if outcome != nil && outcome.Deployed != nil {
		d := outcome.Deployed
		out["synced"], out["health"], out["healthy_after"] = d.SyncedRevision, d.Health, d.Healthy.Round(time.Millisecond).String()
		if r.DORA.SourceCommitTime != nil {
			r.DORA.LeadTime = time.Since(*r.DORA.SourceCommitTime)
		}
	}
	end(out, err)
	if err != nil {
		r.DORA.Failed = true
		if outcome != nil && outcome.RolledBack {
			r.DORA.RolledBack = true
			rb := map[string]string{"revert": outcome.RollbackRevision}
			if outcome.Restored != nil {
				rb["health"] = outcome.Restored.Health
				r.DORA.TimeToRestore = outcome.Restored.Healthy
			}
			r.Stages = append(r.Stages, report.Stage{Name: "rollback", Status: report.Succeeded, Start: time.Now(), Output: rb})
			if outcome.Restored == nil {
				r.Stages[len(r.Stages)-1].Status = report.Failed
			}
		}
	}
	return err
}

// sendReport emails the report; a failure is recorded in the report, never returned.
func sendReport(ctx context.Context, n *notify.Options, r *report.Run) {
	if n == nil {
		r.Skip("notify", "no SMTP server given")
		return
	}
	end := r.Begin("notify")
	err := notify.Send(ctx, *n, r)
	end(map[string]string{"to": strings.Join(n.To, ",")}, err)
}

// updateFor turns "registry/owner/name:tag[@digest]" into a manifest update for image "name".
func updateFor(ref string) (manifest.Update, error) {
	repo, digest, _ := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	// Matched by the image's name (last path element): the manifests may name another registry,
	// which newName then replaces.
	u := manifest.Update{Name: lastElem(repo), NewName: repo, Tag: tag, Digest: digest}
	if err := u.Validate(); err != nil {
		return u, fmt.Errorf("deploy: image %q: %w", ref, err)
	}
	return u, nil
}

func lastElem(repo string) string { return repo[strings.LastIndex(repo, "/")+1:] }

func replace(list []string, old, new string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		if s == old {
			s = new
		}
		out[i] = s
	}
	return out
}

// PromoteOptions configure a promotion from one environment's overlay to the next's.
type PromoteOptions struct {
	// From and To are environments (kubernetes/overlays/<env>).
	From, To string
	// Git is the GitOps repository.
	Git git.Options
	// FromApp and ToApp are the Argo CD applications of the two environments (ToApp is synced).
	Argo           argocd.Options
	FromApp, ToApp string
	Rollback       bool
	Notify         *notify.Options
	Message        string
}

// Promote copies the exact images (digests where the source pins them) that the source environment
// runs into the target's overlay, commits, pushes and syncs the target. It refuses to promote what is
// not Synced and Healthy in the source environment.
func Promote(ctx context.Context, o PromoteOptions) (*report.Run, error) {
	r := report.New(fmt.Sprintf("Wanderlust promote %s → %s", o.From, o.To), o.To)
	err := promote(ctx, o, r)
	r.Finish(err)
	sendReport(ctx, o.Notify, r)
	return r, err
}

func promote(ctx context.Context, o PromoteOptions, r *report.Run) error {
	end := r.Begin("check-source")
	src := o.Argo
	src.App = o.FromApp
	st, err := argocd.Status(ctx, src)
	if err == nil && (st.Sync != "Synced" || st.Health != "Healthy") {
		err = fmt.Errorf("promote: %s is %s and %s, not Synced and Healthy: refusing to promote it", o.FromApp, st.Sync, st.Health)
	}
	out := map[string]string{}
	if st != nil {
		out["sync"], out["health"], out["revision"] = st.Sync, st.Health, st.Revision
	}
	end(out, err)
	if err != nil {
		return err
	}

	// What the source runs: its overlay at the revision Argo CD synced.
	end = r.Begin("read-source")
	var imgs []manifest.Image
	err = git.Read(ctx, o.Git, st.Revision, func(fsys fs.FS) (err error) {
		imgs, err = manifest.Images(fsys, manifest.EnvPath(o.From))
		return err
	})
	out = map[string]string{}
	var updates []manifest.Update
	for _, i := range imgs {
		out[lastElem(i.Name)] = i.Ref()
		updates = append(updates, manifest.Update{Name: i.Name, NewName: i.NewName, Tag: i.NewTag, Digest: i.Digest})
	}
	if err == nil && len(updates) == 0 {
		err = fmt.Errorf("promote: %s lists no images", manifest.EnvPath(o.From))
	}
	end(out, err)
	if err != nil {
		return err
	}
	ao := o.Argo
	ao.App = o.ToApp
	return run(ctx, Options{
		Updates: updates,
		Bump:    bump.Options{Git: o.Git, Env: o.To, Message: o.Message},
		Argo:    &ao, Rollback: o.Rollback,
	}, r)
}
