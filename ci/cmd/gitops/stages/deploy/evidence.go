package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// Evidence is the gate on what an image proves (signature, SBOM, provenance, scan verdict) before
// it is written to git.
type Evidence struct {
	// Verifier checks the signatures: by public key, or by certificate identity (keyless).
	Verifier evidence.Checker
	// Policy is what the provenance and the scan verdict must show.
	Policy evidence.Policy
	// AllowUnverified skips the gate, with this reason in the report (--allow-unverified).
	AllowUnverified string
	// SourceCommits are the application commits the provenance must name, by image entry, where
	// Policy.SourceCommit is empty (promote: what the source environment's deployments recorded).
	SourceCommits map[string]string
}

// checkEvidence verifies each update's image at its exact digest (resolving a tag-only update
// first) and returns the updates pinned to the verified digests, so that what is written is what
// was verified. It fails, naming every image and piece, unless all pass; it writes nothing.
func checkEvidence(ctx context.Context, g *Evidence, auth registry.Auth, updates []manifest.Update, r *report.Run) ([]manifest.Update, error) {
	if g == nil {
		return updates, nil
	}
	if g.AllowUnverified != "" {
		r.Skip("evidence", "--allow-unverified: "+g.AllowUnverified)
		return updates, nil
	}
	sctx, end := r.Start(ctx, "evidence")
	out := map[string]string{}
	var errs []error
	pinned := append([]manifest.Update(nil), updates...)
	for i, u := range pinned {
		repo := cmp.Or(u.NewName, u.Name)
		digest := u.Digest
		if digest == "" {
			if u.Tag == "" {
				errs = append(errs, fmt.Errorf("evidence: %s: neither tag nor digest to verify", repo))
				continue
			}
			imgs, err := registry.Resolve(sctx, []string{repo + ":" + u.Tag}, auth)
			if err != nil {
				errs = append(errs, fmt.Errorf("evidence: %w", err))
				continue
			}
			digest = imgs[0].Digest
		}
		policy := g.Policy
		if policy.SourceCommit == "" {
			policy.SourceCommit = g.SourceCommits[u.Name]
		}
		// Never a check skipped in silence: without a repository or a commit the provenance
		// proves nothing about where the image came from.
		if policy.SourceRepo == "" {
			errs = append(errs, fmt.Errorf("evidence: %s: no source repository is configured (--source-repo), so its provenance cannot be checked; set it, or pass --allow-unverified \"reason\"", repo))
		}
		if policy.SourceCommit == "" {
			errs = append(errs, fmt.Errorf("evidence: %s: the application commit it was built from cannot be established (no --source-commit, and the commit that set it carries no Source-Commit trailer or lies beyond the history read); pass --source-commit, or --allow-unverified \"reason\"", repo))
		}
		rep, err := evidence.Verify(sctx, repo+"@"+digest, g.Verifier, policy, evidence.Remote{Auth: auth})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[manifest.LastElem(repo)] = strings.ReplaceAll(rep.Summary(), "\n", "; ")
		if err := rep.Err(); err != nil {
			errs = append(errs, err)
		}
		pinned[i].Digest = digest
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("evidence gate: refusing unproven images (nothing was pushed): %w", err)
	}
	end(out, err)
	return pinned, err
}
