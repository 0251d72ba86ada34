package evidence_test

import (
	"context"
	"crypto/elliptic"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/testsupport/cosigncli"
)

// Each tampering is refused by our gate with the piece named, and where cosign can judge it
// (signature, presence of an attestation type) cosign refuses it too.
func TestTamperedEvidenceIsRefused(t *testing.T) {
	c := cosigncli.New(t)
	ours, other := c.GenerateKeyPair(t, password), c.GenerateKeyPair(t, password)
	signer, err := evidence.LoadSigner(ours.Private, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := evidence.LoadSigner(other.Private, []byte(password))
	if err != nil {
		t.Fatal(err)
	}
	ver, err := evidence.LoadVerifier(ours.Public)
	if err != nil {
		t.Fatal(err)
	}
	host := startRegistry(t, false)
	ctx := context.Background()
	policy := evidence.Policy{SourceRepo: testRepo, SourceCommit: testCommit, FailOn: "HIGH"}
	high := []findings.Finding{{Tool: "trivy", ID: "CVE-2099-0002", Severity: findings.High}}

	cases := []struct {
		name   string
		attach func(image string)
		piece  string
		why    string
		// cosign: the cosign subcommand and type that must refuse it too ("" = not cosign's to judge).
		cosign []string
	}{
		{"re-tagged unsigned image", func(string) {}, "signature:", "none stored", []string{"verify"}},
		{"signature by another key", func(image string) {
			if _, err := otherSigner.Attach(ctx, image, statements(t, image, testCommit, nil), evidence.Remote{}); err != nil {
				t.Fatal(err)
			}
		}, "signature:", "none valid for key", []string{"verify"}},
		{"provenance for another commit", func(image string) {
			if _, err := signer.Attach(ctx, image, statements(t, image, strings.Repeat("f", 40), nil), evidence.Remote{}); err != nil {
				t.Fatal(err)
			}
		}, "provenance:", "built from commit ffff", nil},
		{"failing scan verdict", func(image string) {
			if _, err := signer.Attach(ctx, image, statements(t, image, testCommit, high), evidence.Remote{}); err != nil {
				t.Fatal(err)
			}
		}, "scan-verdict:", "CVE-2099-0002", nil},
		{"missing SBOM", func(image string) {
			if _, err := signer.Attach(ctx, image, statements(t, image, testCommit, nil)[1:], evidence.Remote{}); err != nil {
				t.Fatal(err)
			}
		}, "sbom:", "no CycloneDX attestation", []string{"verify-attestation", "--type", "cyclonedx"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			image := pushImage(t, host, "tamper-"+string(rune('a'+i)))
			tc.attach(image)
			rep, err := evidence.Verify(ctx, image, ver, policy, evidence.Remote{})
			if err != nil {
				t.Fatal(err)
			}
			got := rep.Err()
			if got == nil || !strings.Contains(got.Error(), tc.piece) || !strings.Contains(got.Error(), tc.why) || !strings.Contains(got.Error(), image) {
				t.Fatalf("err = %v, want the image, %q and %q named", got, tc.piece, tc.why)
			}
			// Unsigned or signed by another key: nothing of it counts. Otherwise only the tampered piece fails.
			if want := map[bool]int{true: 4, false: 1}[tc.piece == "signature:"]; len(rep.Problems) != want {
				t.Errorf("problems = %+v, want %d", rep.Problems, want)
			}
			if tc.cosign != nil {
				args := append(append([]string{}, tc.cosign...), "--key", ours.PublicPath(), "--insecure-ignore-tlog=true", "--allow-http-registry=true", image)
				if out, err := c.Run(ours.Dir, args...); err == nil {
					t.Errorf("cosign %v accepted it:\n%s", tc.cosign, out)
				}
			}
		})
	}
}

// A wrong password or a key that is not a key is a clear error that shows neither.
func TestBadSigningKeysAreClearErrors(t *testing.T) {
	priv, _, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte("right")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evidence.LoadSigner(priv, []byte("wrong-password-xyz")); err == nil || strings.Contains(err.Error(), "wrong-password-xyz") || !strings.Contains(err.Error(), "--signing-password") {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := evidence.LoadSigner([]byte("not a key"), nil); err == nil || strings.Contains(err.Error(), "not a key") {
		t.Errorf("garbage key: %v", err)
	}
	if _, err := evidence.LoadSigner(priv, []byte("right")); err != nil {
		t.Errorf("right password: %v", err)
	}
	if _, err := evidence.LoadVerifier(priv); err == nil {
		t.Error("a private key was accepted as the public key")
	}
}
