package publish

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/scan"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
)

// EvidenceOptions say how to prove the published images.
type EvidenceOptions struct {
	// Signer signs and stores the digests and the attestations (a key, or keyless).
	Signer evidence.Attacher
	// Build is the provenance shared by the images (source, builder, parameters); Component,
	// Version and BaseImages are set per image.
	Build evidence.Build
	// BaseImages are each component's base images.
	BaseImages map[string][]evidence.BaseImage
	// Policy is the scan policy of the verdict.
	Policy findings.Policy
	// Scan configures the Trivy container (DB mirror).
	Scan scan.Options
	// Registry logs in to store the evidence.
	Registry registry.Auth
}

// Proven is the evidence stored for one published image.
type Proven struct {
	Name     string
	Attached *evidence.Attached
	Verdict  evidence.Verdict
}

// Check refuses, before anything is built or pushed, evidence options that cannot make provenance.
func (o EvidenceOptions) Check() error {
	if o.Signer == nil {
		return fmt.Errorf("publish: evidence: no signing key")
	}
	if err := o.Build.Validate(); err != nil {
		return fmt.Errorf("publish: %w (give --source-repo and the full --source-commit)", err)
	}
	return nil
}

// Prove makes each published image's SBOM and vulnerability report with Trivy (in a container),
// its SLSA provenance and scan verdict, signs the digest and the three attestations and stores them
// next to the image.
func Prove(ctx context.Context, c *dagger.Client, images map[string]*dagger.Container, pub []Published, o EvidenceOptions) ([]Proven, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	out := make([]Proven, len(pub))
	g, ctx := errgroup.WithContext(ctx)
	for i, p := range pub {
		g.Go(func() error {
			img, ok := images[p.Name]
			if !ok {
				return fmt.Errorf("publish %s: evidence: no built container", p.Name)
			}
			ctr := scan.ImageEvidence(c, img, o.Scan)
			raw, err := ctr.File("/out/sbom.cdx.json").Contents(ctx)
			if err != nil {
				return fmt.Errorf("publish %s: SBOM: %w", p.Name, err)
			}
			sbom, err := evidence.NameSBOM([]byte(raw), p.Ref)
			if err != nil {
				return fmt.Errorf("publish %s: SBOM: %w", p.Name, err)
			}
			vulns, err := ctr.File("/out/vulns.json").Contents(ctx)
			if err != nil {
				return fmt.Errorf("publish %s: vulnerability scan: %w", p.Name, err)
			}
			fs, err := findings.ParseTrivy([]byte(vulns))
			if err != nil {
				return fmt.Errorf("publish %s: vulnerability scan: %w", p.Name, err)
			}
			d, err := evidence.ParseDigest(p.Ref)
			if err != nil {
				return err
			}
			verdict := evidence.NewVerdict(scan.TrivyImage, fs, o.Policy, time.Now())
			b := o.Build
			b.Component, b.Version, b.BaseImages = p.Name, versionOf(p.Ref), o.BaseImages[p.Name]
			if b.Finished.IsZero() {
				b.Finished = time.Now().UTC()
			}
			bom, err := evidence.SBOM(d, sbom)
			if err != nil {
				return fmt.Errorf("publish %s: %w", p.Name, err)
			}
			prov, err := evidence.Provenance(d, b)
			if err != nil {
				return fmt.Errorf("publish %s: %w", p.Name, err)
			}
			ver, err := evidence.ScanVerdictStatement(d, verdict)
			if err != nil {
				return fmt.Errorf("publish %s: %w", p.Name, err)
			}
			att, err := o.Signer.Attach(ctx, p.Ref, []evidence.Statement{bom, prov, ver}, evidence.Remote{Auth: o.Registry})
			if err != nil {
				return fmt.Errorf("publish %s: %w", p.Name, err)
			}
			out[i] = Proven{Name: p.Name, Attached: att, Verdict: verdict}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// versionOf is the tag of repo:tag@digest.
func versionOf(ref string) string {
	repo, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		return repo[i+1:]
	}
	return ""
}
