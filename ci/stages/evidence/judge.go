package evidence

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"wanderlust.dev/pipeline/ci/stages/git"
)

// Policy is what an image's evidence must show to be deployed or promoted.
type Policy struct {
	// SourceRepo, when set, is the repository the provenance must name; SourceCommit, when set,
	// the commit.
	SourceRepo, SourceCommit string
	// FailOn is the target environment's threshold for the scan verdict (e.g. HIGH): no finding
	// off the allow list at or above it. Empty: the verdict's own pass/fail only.
	FailOn string
}

// Problem is one missing or invalid piece of evidence.
type Problem struct {
	Piece string // signature, sbom, provenance, scan-verdict
	Why   string
}

// Report is the verdict on an image's evidence.
type Report struct {
	Image    string
	Signer   string // who signed it (key or certificate identity), when signed
	Pieces   map[string]string
	Problems []Problem
}

// Passed says no piece is missing or invalid.
func (r *Report) Passed() bool { return len(r.Problems) == 0 }

// Err is nil when the evidence passed, else an error naming the image and every bad piece.
func (r *Report) Err() error {
	if r.Passed() {
		return nil
	}
	var parts []string
	for _, p := range r.Problems {
		parts = append(parts, p.Piece+": "+p.Why)
	}
	return fmt.Errorf("evidence: %s: %s", r.Image, strings.Join(parts, "; "))
}

// Summary is one line per piece, for reports.
func (r *Report) Summary() string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(r.Pieces)) {
		lines = append(lines, k+": "+r.Pieces[k])
	}
	for _, p := range r.Problems {
		lines = append(lines, "✗ "+p.Piece+": "+p.Why)
	}
	return strings.Join(lines, "\n")
}

// Judge decides whether the found evidence satisfies the policy; signer names what the signatures
// had to verify with ("key SHA256:…", or a certificate identity and issuer). It reads nothing.
func Judge(f *Found, signer string, p Policy) *Report {
	r := &Report{Image: f.Image, Pieces: map[string]string{}}
	rejected := func(piece string) string {
		var why []string
		for _, s := range f.Rejected {
			// "not signed by <key>" repeats what the missing piece's text says.
			if strings.Contains(s, piece) && (piece == "signature" || !strings.Contains(s, "not signed by")) {
				why = append(why, s)
			}
		}
		if len(why) == 0 {
			return ""
		}
		return " (found but rejected: " + strings.Join(why, "; ") + ")"
	}
	if f.Signed {
		r.Signer = cmp.Or(f.SignedBy, signer)
		r.Pieces["signature"] = "signed by " + r.Signer
	} else if f.Signatures == 0 {
		r.Problems = append(r.Problems, Problem{"signature", "none stored (unsigned image)"})
	} else {
		r.Problems = append(r.Problems, Problem{"signature", fmt.Sprintf("%d stored, none valid for %s%s", f.Signatures, signer, rejected("signature"))})
	}

	if a := f.Attestations[CycloneDX]; a == nil {
		r.Problems = append(r.Problems, Problem{"sbom", "no CycloneDX attestation signed by " + signer + rejected(CycloneDX)})
	} else if bom, err := decodeBOM(a.Predicate); err != nil {
		r.Problems = append(r.Problems, Problem{"sbom", err.Error()})
	} else {
		n := 0
		if bom.Components != nil {
			n = len(*bom.Components)
		}
		r.Pieces["sbom"] = fmt.Sprintf("%s (CycloneDX %s, %d components)", a.Envelope, bom.SpecVersion, n)
	}

	if a := f.Attestations[SLSAProvenance]; a == nil {
		r.Problems = append(r.Problems, Problem{"provenance", "no SLSA v1 provenance signed by " + signer + rejected(SLSAProvenance)})
	} else if repo, commit, builder, err := provenanceSource(a.Predicate); err != nil {
		r.Problems = append(r.Problems, Problem{"provenance", err.Error()})
	} else {
		r.Pieces["provenance"] = fmt.Sprintf("%s (%s@%s by %s)", a.Envelope, repo, commit, builder)
		switch {
		case p.SourceRepo != "" && !git.SameRepo(repo, p.SourceRepo):
			r.Problems = append(r.Problems, Problem{"provenance", fmt.Sprintf("built from %s, want %s", repo, p.SourceRepo)})
		case p.SourceCommit != "" && !strings.HasPrefix(commit, strings.ToLower(p.SourceCommit)):
			r.Problems = append(r.Problems, Problem{"provenance", fmt.Sprintf("built from commit %s, want %s", commit, p.SourceCommit)})
		}
	}

	if a := f.Attestations[ScanVerdict]; a == nil {
		r.Problems = append(r.Problems, Problem{"scan-verdict", "no scan verdict signed by " + signer + rejected(ScanVerdict)})
	} else {
		var v Verdict
		if err := json.Unmarshal(a.Predicate, &v); err != nil {
			r.Problems = append(r.Problems, Problem{"scan-verdict", "unreadable: " + err.Error()})
		} else {
			ok, why := v.PassesUnder(p.FailOn)
			state := "pass"
			if !ok {
				state = "fail"
				r.Problems = append(r.Problems, Problem{"scan-verdict", why})
			}
			r.Pieces["scan-verdict"] = fmt.Sprintf("%s (%s; policy fail on %s%s; %s)", a.Envelope, state, v.Policy.FailOn, target(p.FailOn), counts(v.Unallowed))
		}
	}
	return r
}

// Checker finds an image's evidence that verifies: by public key (*Verifier), or by certificate
// identity (keyless, in the GitOps program).
type Checker interface {
	// Collect reads the image's stored evidence and keeps what verifies and is about its digest.
	Collect(ctx context.Context, image string, r Remote) (*Found, error)
	// Signer names what the signatures must verify with, for reports and errors.
	Signer() string
}

// Verify collects and judges an image's evidence.
func Verify(ctx context.Context, image string, c Checker, p Policy, r Remote) (*Report, error) {
	f, err := c.Collect(ctx, image, r)
	if err != nil {
		return nil, err
	}
	return Judge(f, c.Signer(), p), nil
}

func target(failOn string) string {
	if failOn == "" {
		return ""
	}
	return ", target fail on " + strings.ToUpper(failOn)
}

func counts(m map[string]int) string {
	var parts []string
	for _, s := range []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"} {
		if m[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, m[s]))
		}
	}
	if len(parts) == 0 {
		return "no findings off the allow list"
	}
	return strings.Join(parts, ", ")
}

// provenanceSource reads the source repository and commit of a SLSA v1 provenance predicate.
func provenanceSource(pred json.RawMessage) (repo, commit, builder string, err error) {
	var p struct {
		BuildDefinition struct {
			BuildType          string `json:"buildType"`
			ExternalParameters struct {
				Source   string `json:"source"`
				Revision string `json:"revision"`
			} `json:"externalParameters"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Builder struct {
				ID string `json:"id"`
			} `json:"builder"`
		} `json:"runDetails"`
	}
	if err := json.Unmarshal(pred, &p); err != nil {
		return "", "", "", fmt.Errorf("unreadable: %w", err)
	}
	ep := p.BuildDefinition.ExternalParameters
	if ep.Source == "" || ep.Revision == "" {
		return "", "", "", fmt.Errorf("names no source repository and commit (build type %q)", p.BuildDefinition.BuildType)
	}
	return ep.Source, ep.Revision, p.RunDetails.Builder.ID, nil
}
