package keyless

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore-go/pkg/sign"
	"google.golang.org/protobuf/encoding/protojson"

	"wanderlust.dev/pipeline/ci/cmd/gitops/internal/sigstorestack"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/testsupport/cosigncli"
)

func image(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	repo := strings.TrimPrefix(srv.URL, "http://") + "/wanderlust-frontend"
	ref, _ := name.ParseReference(repo + ":v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return repo + "@" + d.String()
}

// minted hands out a certificate made by the stack's CA for the key, as Fulcio would, with the
// validity the test wants.
type minted struct {
	s                   *sigstorestack.Stack
	t                   *testing.T
	subject, issuer     string
	notBefore, notAfter time.Time
}

func (m minted) GetCertificate(_ context.Context, kp sign.Keypair, _ *sign.CertificateProviderOptions) ([]byte, error) {
	return m.s.Certificate(m.t, kp.GetPublicKey().(*ecdsa.PublicKey), m.subject, m.issuer, m.notBefore, m.notAfter), nil
}

func checker(t *testing.T, s *sigstorestack.Stack, id Identity) *Checker {
	t.Helper()
	tr, err := TrustedRoot(s.TrustedRoot, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChecker(tr, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWhatCosignSignsKeylessOurGateAccepts(t *testing.T) {
	s := sigstorestack.Start(t)
	img := image(t)
	cli := cosigncli.NewV3(t)
	token := s.Token(t, sigstorestack.GitHubClaims(sigstorestack.Workflow))
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token), 0o600)
	common := []string{"--yes", "--identity-token", tokenFile, "--signing-config", s.SigningConfigPath, "--trusted-root", s.TrustedRootPath, "--allow-http-registry"}
	if out, err := cli.Run(dir, append(append([]string{"sign"}, common...), img)...); err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	pred := filepath.Join(dir, "bom.json")
	os.WriteFile(pred, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`), 0o600)
	if out, err := cli.Run(dir, append(append([]string{"attest", "--type", "cyclonedx", "--predicate", pred}, common...), img)...); err != nil {
		t.Fatalf("cosign attest: %v\n%s", err, out)
	}
	want := Identity{Subject: sigstorestack.Identity(sigstorestack.Workflow), Issuer: s.Issuer}
	f, err := checker(t, s, want).Collect(context.Background(), img, evidence.Remote{})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Signed || f.Attestations[evidence.CycloneDX] == nil || len(f.Rejected) > 0 {
		t.Fatalf("cosign's keyless signature and attestation: found %+v", f)
	}
	if !strings.Contains(f.SignedBy, want.Subject) {
		t.Fatalf("signed by %q, want %s", f.SignedBy, want.Subject)
	}
}

func TestKeylessGateRefusesWhatItMustAndSaysWhy(t *testing.T) {
	s := sigstorestack.Start(t)
	ctx := context.Background()
	subject := sigstorestack.Identity(sigstorestack.Workflow)
	sv := Services{FulcioURL: s.FulcioURL, RekorURL: s.RekorURL, TSAURL: s.TSAURL}
	tokens := TokenSource{RequestURL: s.RequestURL, RequestToken: s.RequestToken}
	signed := func(t *testing.T, o SignOptions) string {
		t.Helper()
		img := image(t)
		signer, err := NewSigner(o)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := evidence.ParseDigest(img)
		bom, _ := evidence.SBOM(d, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`))
		if _, err := signer.Attach(ctx, img, []evidence.Statement{bom}, evidence.Remote{}); err != nil {
			t.Fatal(err)
		}
		return img
	}
	judge := func(t *testing.T, img string, id Identity) (*evidence.Found, error) {
		t.Helper()
		c := checker(t, s, id)
		f, err := c.Collect(ctx, img, evidence.Remote{})
		if err != nil {
			t.Fatal(err)
		}
		return f, evidence.Judge(f, c.Signer(), evidence.Policy{}).Err()
	}
	good := signed(t, SignOptions{Services: sv, Token: tokens})
	want := func(t *testing.T, err error, parts ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("accepted")
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Fatalf("the refusal does not say %q:\n%v", p, err)
			}
		}
	}

	t.Run("another identity", func(t *testing.T) {
		other := sigstorestack.Identity("wanderlust-app/wanderlust/.github/workflows/release.yml@refs/heads/main")
		_, err := judge(t, good, Identity{Subject: other, Issuer: s.Issuer})
		want(t, err, good, "signature:", "signed by "+subject, "want "+other)
		_, err = judge(t, good, Identity{SubjectRegexp: `^https://github\.com/other-org/`, Issuer: s.Issuer})
		want(t, err, "signature:", "want /^https://github\\.com/other-org//")
	})
	t.Run("another issuer", func(t *testing.T) {
		_, err := judge(t, good, Identity{Subject: subject, Issuer: "https://token.actions.githubusercontent.com"})
		want(t, err, "signature:", "(issuer "+s.Issuer+")", "issued by https://token.actions.githubusercontent.com")
	})
	t.Run("the identity required passes", func(t *testing.T) {
		f, err := judge(t, good, Identity{SubjectRegexp: `^https://github\.com/wanderlust-app/wanderlust/`, Issuer: s.Issuer})
		if !f.Signed || f.Attestations[evidence.CycloneDX] == nil {
			t.Fatalf("found %+v", f)
		}
		if err == nil || strings.Contains(err.Error(), "signature:") {
			t.Fatalf("only the missing provenance and verdict should be refused: %v", err)
		}
	})
	t.Run("missing from the log", func(t *testing.T) {
		img := image(t)
		d, _ := evidence.ParseDigest(img)
		st, _ := cosignStatement(d)
		kp, _ := sign.NewEphemeralKeypair(nil)
		b, err := sign.Bundle(&sign.DSSEData{Data: st, PayloadType: intotoPayloadType}, kp, sign.BundleOptions{
			CertificateProvider:  minted{s, t, subject, s.Issuer, time.Now().Add(-time.Minute), time.Now().Add(10 * time.Minute)},
			TimestampAuthorities: []*sign.TimestampAuthority{sign.NewTimestampAuthority(&sign.TimestampAuthorityOptions{URL: s.TSAURL})}})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := protojson.Marshal(b)
		if _, err := put(ctx, d, raw, CosignSign, evidence.Remote{}); err != nil {
			t.Fatal(err)
		}
		_, err = judge(t, img, Identity{Subject: subject, Issuer: s.Issuer})
		want(t, err, img, "signature:", "not in a transparency log")
	})
	t.Run("certificate expired at signing time", func(t *testing.T) {
		img := signed(t, SignOptions{Services: sv, Certificates: minted{s, t, subject, s.Issuer, time.Now().Add(-30 * time.Minute), time.Now().Add(-20 * time.Minute)}})
		_, err := judge(t, img, Identity{Subject: subject, Issuer: s.Issuer})
		want(t, err, img, "signature:", "does not verify", "the certificate had expired when the signature was made")
	})
	t.Run("tampered attestation", func(t *testing.T) {
		img := signed(t, SignOptions{Services: sv, Token: tokens})
		d, _ := evidence.ParseDigest(img)
		stored, err := list(ctx, d, evidence.Remote{})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range stored {
			if st.predicateType != evidence.CycloneDX {
				continue
			}
			var pb protobundle.Bundle
			if err := protojson.Unmarshal(st.bundle, &pb); err != nil {
				t.Fatal(err)
			}
			var stmt map[string]any
			json.Unmarshal(pb.GetDsseEnvelope().GetPayload(), &stmt)
			stmt["predicate"] = map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []any{map[string]any{"name": "backdoor"}}}
			pb.GetDsseEnvelope().Payload, _ = json.Marshal(stmt)
			raw, _ := protojson.Marshal(&pb)
			time.Sleep(1100 * time.Millisecond) // a newer creation time: the tampered one is the newest
			if _, err := put(ctx, d, raw, evidence.CycloneDX, evidence.Remote{}); err != nil {
				t.Fatal(err)
			}
		}
		f, _ := judge(t, img, Identity{Subject: subject, Issuer: s.Issuer})
		var rejected string
		for _, r := range f.Rejected {
			if strings.HasPrefix(r, "attestation: "+evidence.CycloneDX) {
				rejected = r
			}
		}
		if !strings.Contains(rejected, "does not verify") {
			t.Fatalf("the tampered SBOM was not refused: %+v", f.Rejected)
		}
		if a := f.Attestations[evidence.CycloneDX]; a == nil || strings.Contains(string(a.Predicate), "backdoor") {
			t.Fatalf("the SBOM kept is not the genuine one: %+v", a)
		}
	})
}
