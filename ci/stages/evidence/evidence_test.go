package evidence_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/testsupport/cosigncli"
	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
)

const (
	testRepo   = "https://github.com/wanderlust-app/wanderlust"
	testCommit = "0123456789abcdef0123456789abcdef01234567"
	password   = "correct horse battery staple"
)

// pushImage pushes a random image and returns its digest-pinned reference.
func pushImage(t *testing.T, host, repo string) string {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(host + "/" + repo + ":1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return tag.Context().Digest(d.String()).String()
}

func startRegistry(t *testing.T, referrers bool) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(referrers), ggcrregistry.Logger(discard())))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// statements are the three attestations of a release, the SBOM being the shared Trivy fixture.
func statements(t *testing.T, image string, commit string, fs []findings.Finding) []evidence.Statement {
	t.Helper()
	d, err := evidence.ParseDigest(image)
	if err != nil {
		t.Fatal(err)
	}
	sbom, err := evidence.SBOM(d, fixtures.Read(t, fixtures.Trivy(t), "sbom.cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	prov, err := evidence.Provenance(d, evidence.Build{Component: "backend", Version: "1.0.0", SourceRepo: testRepo, SourceCommit: commit,
		BuilderID: "https://github.com/wanderlust-app/wanderlust/ci", BuilderVersion: map[string]string{"module": "test"},
		BaseImages: []evidence.BaseImage{{Ref: "docker.io/library/node:20.18.1-alpine3.20", Digest: "sha256:" + strings.Repeat("ab", 32)}},
		Parameters: map[string]any{"skipTests": false}, InvocationID: "run-1", Started: time.Now().Add(-time.Minute), Finished: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	verdict, err := evidence.ScanVerdictStatement(d, evidence.NewVerdict("docker.io/aquasec/trivy:0.74.0", fs, findings.DefaultPolicy(), time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return []evidence.Statement{sbom, prov, verdict}
}

// The real cosign CLI verifies our signature and each attestation, on a registry with and without
// OCI 1.1 referrers (we store in cosign's tag scheme, which both serve).
func TestCosignVerifiesOurSignatureAndAttestations(t *testing.T) {
	c := cosigncli.New(t)
	keys := c.GenerateKeyPair(t, password)
	signer, err := evidence.LoadSigner(keys.Private, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	for _, referrers := range []bool{false, true} {
		t.Run(map[bool]string{false: "tags-only registry", true: "referrers registry"}[referrers], func(t *testing.T) {
			host := startRegistry(t, referrers)
			image := pushImage(t, host, "wanderlust-backend")
			att, err := signer.Attach(context.Background(), image, statements(t, image, testCommit, nil), evidence.Remote{})
			if err != nil {
				t.Fatal(err)
			}
			common := []string{"--key", keys.PublicPath(), "--insecure-ignore-tlog=true", "--allow-http-registry=true"}
			out, err := c.Run(keys.Dir, append(append([]string{"verify"}, common...), image)...)
			if err != nil {
				t.Fatalf("cosign verify refused our signature: %v\n%s", err, out)
			}
			if !strings.Contains(out, strings.SplitN(image, "@", 2)[1]) {
				t.Errorf("cosign verify output names no digest:\n%s", out)
			}
			for _, typ := range []string{"slsaprovenance1", "cyclonedx", evidence.ScanVerdict} {
				out, err := c.Run(keys.Dir, append(append([]string{"verify-attestation", "--type", typ}, common...), image)...)
				if err != nil {
					t.Fatalf("cosign verify-attestation --type %s refused ours: %v\n%s", typ, err, out)
				}
			}
			// cosign tells types apart: there is no SPDX attestation, and it says so.
			if out, err := c.Run(keys.Dir, append(append([]string{"verify-attestation", "--type", "spdxjson"}, common...), image)...); err == nil {
				t.Errorf("cosign found an SPDX attestation we never made:\n%s", out)
			}
			if len(att.Envelopes) != 3 || att.KeyID == "" {
				t.Errorf("attached = %+v", att)
			}

			// And the other way round: what cosign signs, our verifier reads.
			ver, err := evidence.LoadVerifier(keys.Public)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := evidence.Verify(context.Background(), image, ver, evidence.Policy{SourceRepo: testRepo + ".git", SourceCommit: testCommit[:12], FailOn: "HIGH"}, evidence.Remote{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Passed() {
				t.Fatalf("our own evidence did not pass: %v", rep.Err())
			}
			t.Logf("evidence of %s:\n%s", image, rep.Summary())
		})
	}
}

// An image signed by cosign itself (cosign sign, cosign attest) passes our verifier: the two agree on
// the format in both directions.
func TestOurVerifierReadsWhatCosignSigned(t *testing.T) {
	c := cosigncli.New(t)
	keys := c.GenerateKeyPair(t, password)
	host := startRegistry(t, false)
	image := pushImage(t, host, "wanderlust-frontend")
	c.Env = []string{"COSIGN_PASSWORD=" + password}
	common := []string{"--key", filepath.Join(keys.Dir, "cosign.key"), "--tlog-upload=false", "--allow-http-registry=true", "--yes"}
	if out, err := c.Run(keys.Dir, append(append([]string{"sign"}, common...), image)...); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	sbom := filepath.Join(fixtures.Trivy(t), "sbom.cdx.json")
	if out, err := c.Run(keys.Dir, append(append([]string{"attest", "--type", "cyclonedx", "--predicate", sbom}, common...), image)...); err != nil {
		t.Fatalf("cosign attest: %v\n%s", err, out)
	}
	ver, err := evidence.LoadVerifier(keys.Public)
	if err != nil {
		t.Fatal(err)
	}
	f, err := ver.Collect(context.Background(), image, evidence.Remote{})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Signed || f.Attestations[evidence.CycloneDX] == nil {
		t.Fatalf("cosign's signature or SBOM attestation not accepted: %+v", f)
	}
	rep := evidence.Judge(f, ver.KeyID, evidence.Policy{})
	if rep.Pieces["sbom"] == "" || !strings.Contains(rep.Pieces["sbom"], "7 components") {
		t.Errorf("sbom piece = %q, want the fixture's 7 components", rep.Pieces["sbom"])
	}
	// No provenance and no verdict were made by cosign here: both are named as missing.
	if got := rep.Err(); got == nil || !strings.Contains(got.Error(), "provenance:") || !strings.Contains(got.Error(), "scan-verdict:") {
		t.Errorf("err = %v, want the missing provenance and scan verdict named", got)
	}
}

// The SBOM names the image it describes, not the tarball Trivy read; every other field stays.
func TestNameSBOMNamesTheImage(t *testing.T) {
	raw := fixtures.Read(t, fixtures.Trivy(t), "sbom.cdx.json")
	const ref = "ghcr.io/acme/wanderlust-backend:1.4.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	named, err := evidence.NameSBOM(raw, ref)
	if err != nil {
		t.Fatal(err)
	}
	var before, after struct {
		Metadata struct {
			Component struct{ Name, Type string } `json:"component"`
		} `json:"metadata"`
		Components []json.RawMessage `json:"components"`
	}
	if json.Unmarshal(raw, &before) != nil || json.Unmarshal(named, &after) != nil {
		t.Fatal("not JSON")
	}
	if after.Metadata.Component.Name != ref || after.Metadata.Component.Type != before.Metadata.Component.Type || len(after.Components) != len(before.Components) || len(before.Components) == 0 {
		t.Errorf("before %+v (%d components), after %+v (%d)", before.Metadata, len(before.Components), after.Metadata, len(after.Components))
	}
	d, err := evidence.ParseDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.SBOM(d, named); err != nil {
		t.Errorf("the named SBOM is not CycloneDX any more: %v", err)
	}
}
