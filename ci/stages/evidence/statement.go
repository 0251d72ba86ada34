package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
)

// Statement is an in-toto Statement v1 about one image, ready to sign.
type Statement struct {
	PredicateType string
	JSON          []byte
}

// statement wraps a predicate (JSON) in an in-toto Statement v1 whose subject is the image digest.
func statement(subject name.Digest, predicateType string, predicate []byte) (Statement, error) {
	var pred structpb.Struct
	if err := protojson.Unmarshal(predicate, &pred); err != nil {
		return Statement{}, fmt.Errorf("evidence: %s predicate: %w", predicateType, err)
	}
	alg, hex, _ := strings.Cut(subject.DigestStr(), ":")
	st := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       []*intoto.ResourceDescriptor{{Name: subject.Context().Name(), Digest: map[string]string{alg: hex}}},
		PredicateType: predicateType,
		Predicate:     &pred,
	}
	if err := st.Validate(); err != nil {
		return Statement{}, fmt.Errorf("evidence: %s statement: %w", predicateType, err)
	}
	b, err := protojson.Marshal(st)
	if err != nil {
		return Statement{}, fmt.Errorf("evidence: %s statement: %w", predicateType, err)
	}
	return Statement{PredicateType: predicateType, JSON: b}, nil
}

// SBOM makes the SBOM statement from a CycloneDX JSON document (Trivy's `--format cyclonedx`),
// refusing what CycloneDX's decoder does not read as a BOM.
func SBOM(subject name.Digest, cyclonedx []byte) (Statement, error) {
	if _, err := decodeBOM(cyclonedx); err != nil {
		return Statement{}, err
	}
	return statement(subject, CycloneDX, cyclonedx)
}

// NameSBOM sets the SBOM's subject (metadata.component.name) to the image's reference: Trivy,
// reading a tarball, names the tarball's path inside its container. Every other field is kept.
func NameSBOM(cyclonedx []byte, ref string) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(cyclonedx, &doc); err != nil {
		return nil, fmt.Errorf("evidence: the SBOM is not JSON: %w", err)
	}
	meta, _ := doc["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		doc["metadata"] = meta
	}
	comp, _ := meta["component"].(map[string]any)
	if comp == nil {
		comp = map[string]any{"type": "container"}
		meta["component"] = comp
	}
	comp["name"] = ref
	return json.MarshalIndent(doc, "", "  ")
}

func decodeBOM(b []byte) (*cdx.BOM, error) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, fmt.Errorf("evidence: the SBOM is not CycloneDX JSON: %w", err)
	}
	if bom.BOMFormat != cdx.BOMFormat {
		return nil, fmt.Errorf("evidence: the SBOM's bomFormat is %q, not %q", bom.BOMFormat, cdx.BOMFormat)
	}
	return &bom, nil
}

// Build is what the provenance says about a build. It holds no secret: parameters are the
// build's flags, never credentials.
type Build struct {
	// Component is the image's name (backend, frontend); Version its release tag.
	Component, Version string
	// SourceRepo and SourceCommit are the application's repository URL and full commit SHA.
	SourceRepo, SourceCommit string
	// BuilderID identifies the builder (this module); BuilderVersion its versions (module, engine…).
	BuilderID      string
	BuilderVersion map[string]string
	// BaseImages are the images the build started from, with their digests where known.
	BaseImages []BaseImage
	// Parameters are the build's flags (e.g. skipTests).
	Parameters map[string]any
	// InvocationID names the run; Started and Finished bound the build.
	InvocationID      string
	Started, Finished time.Time
}

// BaseImage is an image a build used.
type BaseImage struct {
	Ref    string // docker.io/library/node:20.18.1-alpine3.20
	Digest string // sha256:…, empty when it could not be resolved
}

// BuildType is the provenance's buildType: this module's build of a component.
const BuildType = "https://wanderlust.dev/buildtypes/dagger-module/v1"

// Validate checks that the build can have provenance: a source repository and its full commit SHA.
func (b Build) Validate() error {
	if git.HasCredentials(b.SourceRepo) {
		// Signed provenance is published: a token in it is a token given away. Never echo it.
		return errors.New("evidence: --source-repo carries credentials (or does not parse): give the repository's plain URL, it is published in signed provenance")
	}
	if b.SourceRepo == "" || !commitPattern(b.SourceCommit) {
		return fmt.Errorf("evidence: provenance needs the source repository and its full commit SHA (got %q, %q)", b.SourceRepo, b.SourceCommit)
	}
	return nil
}

// Provenance makes the SLSA v1 provenance statement of a build.
func Provenance(subject name.Digest, b Build) (Statement, error) {
	if err := b.Validate(); err != nil {
		return Statement{}, err
	}
	ext, err := structpb.NewStruct(map[string]any{
		"source": b.SourceRepo, "revision": b.SourceCommit, "component": b.Component, "version": b.Version,
	})
	if err != nil {
		return Statement{}, fmt.Errorf("evidence: provenance: %w", err)
	}
	params := map[string]any{}
	for k, v := range b.Parameters {
		params[k] = v
	}
	internal, err := structpb.NewStruct(params)
	if err != nil {
		return Statement{}, fmt.Errorf("evidence: provenance parameters: %w", err)
	}
	deps := []*intoto.ResourceDescriptor{{Uri: "git+" + b.SourceRepo + "@" + b.SourceCommit, Digest: map[string]string{"gitCommit": b.SourceCommit}}}
	for _, bi := range b.BaseImages {
		rd := &intoto.ResourceDescriptor{Uri: "pkg:docker/" + bi.Ref, Name: bi.Ref}
		if alg, hex, ok := strings.Cut(bi.Digest, ":"); ok {
			rd.Digest = map[string]string{alg: hex}
		}
		deps = append(deps, rd)
	}
	p := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{BuildType: BuildType, ExternalParameters: ext, InternalParameters: internal, ResolvedDependencies: deps},
		RunDetails: &slsa.RunDetails{
			Builder:  &slsa.Builder{Id: b.BuilderID, Version: b.BuilderVersion},
			Metadata: &slsa.BuildMetadata{InvocationId: b.InvocationID},
		},
	}
	if !b.Started.IsZero() {
		p.RunDetails.Metadata.StartedOn = timestamppb.New(b.Started)
	}
	if !b.Finished.IsZero() {
		p.RunDetails.Metadata.FinishedOn = timestamppb.New(b.Finished)
	}
	if err := p.Validate(); err != nil {
		return Statement{}, fmt.Errorf("evidence: provenance: %w", err)
	}
	js, err := protojson.Marshal(p)
	if err != nil {
		return Statement{}, fmt.Errorf("evidence: provenance: %w", err)
	}
	return statement(subject, SLSAProvenance, js)
}

func commitPattern(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// Verdict is the scan verdict's predicate: the policy, what was found and whether it passed.
type Verdict struct {
	Scanner string `json:"scanner"` // the scanner's image, e.g. docker.io/aquasec/trivy:0.74.0
	Policy  struct {
		FailOn  string   `json:"failOn"`
		MaxCVSS float64  `json:"maxCvss,omitempty"`
		Allow   []string `json:"allow,omitempty"`
	} `json:"policy"`
	// Counts are the findings by severity; Unallowed those not on the allow list.
	Counts    map[string]int `json:"counts"`
	Unallowed map[string]int `json:"unallowed"`
	// Blocking lists the IDs of the findings that failed the gate.
	Blocking []string  `json:"blocking,omitempty"`
	Pass     bool      `json:"pass"`
	Scanned  time.Time `json:"scanned"`
}

// NewVerdict evaluates the findings of an image's scan under the policy.
func NewVerdict(scanner string, fs []findings.Finding, p findings.Policy, scanned time.Time) Verdict {
	ev := findings.Evaluate(fs, nil, p)
	v := Verdict{Scanner: scanner, Counts: map[string]int{}, Unallowed: map[string]int{}, Pass: ev.Pass, Scanned: scanned.UTC()}
	v.Policy.FailOn, v.Policy.MaxCVSS, v.Policy.Allow = p.FailOn.String(), p.MaxCVSS, p.Allow
	allowed := map[string]bool{}
	for _, id := range p.Allow {
		allowed[strings.TrimSpace(id)] = true
	}
	for _, f := range fs {
		v.Counts[f.Severity.String()]++
		if !allowed[f.ID] {
			v.Unallowed[f.Severity.String()]++
		}
	}
	for _, bs := range ev.Blocking {
		for _, f := range bs {
			v.Blocking = append(v.Blocking, f.ID)
		}
	}
	sort.Strings(v.Blocking)
	return v
}

// PassesUnder says whether the verdict passes a target's threshold too: it passed its own policy
// and no finding off the allow list is at or above failOn ("" = the verdict's own policy only).
func (v Verdict) PassesUnder(failOn string) (bool, string) {
	if !v.Pass {
		return false, fmt.Sprintf("the scan failed its own policy (fail on %s): %s", v.Policy.FailOn, strings.Join(v.Blocking, ", "))
	}
	if failOn == "" {
		return true, ""
	}
	threshold, err := findings.ParseSeverity(failOn)
	if err != nil {
		return false, err.Error()
	}
	if threshold == findings.Unknown {
		return true, ""
	}
	var over []string
	for _, s := range []findings.Severity{findings.Low, findings.Medium, findings.High, findings.Critical} {
		if s >= threshold && v.Unallowed[s.String()] > 0 {
			over = append(over, fmt.Sprintf("%d %s", v.Unallowed[s.String()], s))
		}
	}
	if len(over) > 0 {
		return false, fmt.Sprintf("%s at or above %s, which the target does not allow", strings.Join(over, ", "), threshold)
	}
	return true, ""
}

// ScanVerdictStatement makes the verdict's statement.
func ScanVerdictStatement(subject name.Digest, v Verdict) (Statement, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Statement{}, fmt.Errorf("evidence: scan verdict: %w", err)
	}
	return statement(subject, ScanVerdict, b)
}
