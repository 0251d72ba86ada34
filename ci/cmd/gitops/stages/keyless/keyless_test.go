package keyless_test

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/cmd/gitops/internal/sigstorestack"
	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/keyless"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/testsupport/cosigncli"
)

// pushImage pushes a random image and returns repo@digest.
func pushImage(t testing.TB, host, repo string) string {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/" + repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return host + "/" + repo + "@" + d.String()
}

// registryHost serves go-containerregistry's registry; referrers says whether it answers the OCI
// 1.1 referrers API (without it, the fallback tag is used).
func registryHost(t testing.TB, referrers bool) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(referrers), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func statements(t *testing.T, image string) []evidence.Statement {
	t.Helper()
	d, err := evidence.ParseDigest(image)
	if err != nil {
		t.Fatal(err)
	}
	bom, err := evidence.SBOM(d, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"express","version":"4.21.2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return []evidence.Statement{bom}
}

func TestKeylessSignatureVerifiesWithCosignByIdentity(t *testing.T) {
	s := sigstorestack.Start(t)
	for _, referrers := range []bool{true, false} {
		host := registryHost(t, referrers)
		image := pushImage(t, host, "wanderlust-backend")
		tr, err := keyless.TrustedRoot(s.TrustedRoot, nil)
		if err != nil {
			t.Fatal(err)
		}
		signer, err := keyless.NewSigner(keyless.SignOptions{Services: keyless.Services{FulcioURL: s.FulcioURL, RekorURL: s.RekorURL, TSAURL: s.TSAURL},
			Token: keyless.TokenSource{RequestURL: s.RequestURL, RequestToken: s.RequestToken}, TrustedRoot: tr})
		if err != nil {
			t.Fatal(err)
		}
		att, err := signer.Attach(context.Background(), image, statements(t, image), evidence.Remote{})
		if err != nil {
			t.Fatal(err)
		}
		want := sigstorestack.Identity(sigstorestack.Workflow)
		if !strings.Contains(att.KeyID, want) || !strings.Contains(att.KeyID, s.Issuer) {
			t.Fatalf("attached by %q, want %s of %s", att.KeyID, want, s.Issuer)
		}
		cli := cosigncli.NewV3(t)
		out, err := cli.Run(t.TempDir(), "verify", "--certificate-identity", want, "--certificate-oidc-issuer", s.Issuer,
			"--trusted-root", s.TrustedRootPath, "--insecure-ignore-sct", "--allow-http-registry", image)
		if err != nil {
			t.Fatalf("referrers API %v: cosign verify: %v\n%s", referrers, err, out)
		}
		out, err = cli.Run(t.TempDir(), "verify-attestation", "--type", "cyclonedx", "--certificate-identity", want, "--certificate-oidc-issuer", s.Issuer,
			"--trusted-root", s.TrustedRootPath, "--insecure-ignore-sct", "--allow-http-registry", image)
		if err != nil {
			t.Fatalf("referrers API %v: cosign verify-attestation: %v\n%s", referrers, err, out)
		}
		c, err := keyless.NewChecker(tr, keyless.Identity{Subject: want, Issuer: s.Issuer})
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.Collect(context.Background(), image, evidence.Remote{})
		if err != nil {
			t.Fatal(err)
		}
		if !f.Signed || f.Attestations[evidence.CycloneDX] == nil || len(f.Rejected) > 0 {
			t.Fatalf("referrers API %v: found %+v", referrers, f)
		}
	}
}
