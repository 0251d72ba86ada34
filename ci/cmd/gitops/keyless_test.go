package main

import (
	"bytes"
	"context"
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

	"wanderlust.dev/pipeline/ci/cmd/gitops/internal/sigstorestack"
	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/testsupport/otlpcollector"
)

const appRepo, appCommit = "https://github.com/wanderlust-app/wanderlust", "0123456789abcdef0123456789abcdef01234567"

// The program's attest signs an image keyless with the token it requests the way GitHub Actions
// hands it out, and its verify-evidence passes it by the deploy workflow's identity and refuses it
// by another; neither the token nor the request token is in any output or span.
func TestAttestThenVerifyEvidenceByIdentity(t *testing.T) {
	s := sigstorestack.Start(t)
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(false), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	img, _ := random.Image(256, 1)
	repo := strings.TrimPrefix(srv.URL, "http://") + "/wanderlust-backend"
	ref, _ := name.ParseReference(repo + ":1.0.0")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	dg, _ := img.Digest()
	image := repo + "@" + dg.String()
	d, _ := evidence.ParseDigest(image)
	bom, _ := evidence.SBOM(d, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}`))
	prov, err := evidence.Provenance(d, evidence.Build{Component: "backend", Version: "1.0.0", SourceRepo: appRepo, SourceCommit: appCommit,
		BuilderID: "https://github.com/wanderlust-app/wanderlust/tree/main/ci", InvocationID: "run-1", Started: time.Now(), Finished: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	verdict, _ := evidence.ScanVerdictStatement(d, evidence.NewVerdict("trivy", nil, findings.DefaultPolicy(), time.Now()))
	sts, _ := json.Marshal([]evidence.Statement{bom, prov, verdict})
	file := filepath.Join(t.TempDir(), "statements.json")
	os.WriteFile(file, sts, 0o600)

	spans := otlpcollector.Start()
	defer spans.Close()
	env := map[string]string{gitops.EnvOIDCRequestURL: s.RequestURL, gitops.EnvOIDCRequestToken: s.RequestToken,
		"OTEL_EXPORTER_OTLP_ENDPOINT": spans.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
	ctx, flush := tracing(context.Background(), func(k string) string { return env[k] })
	k := gitops.Keyless{FulcioURL: s.FulcioURL, RekorURL: s.RekorURL, TSAURL: s.TSAURL, TrustedRoot: string(s.TrustedRoot)}
	run := func(cmd string, q any) (*gitops.Result, string, error) {
		b, _ := json.Marshal(q)
		var out bytes.Buffer
		err := serve(ctx, cmd, string(b), func(k string) string { return env[k] }, &out)
		res, rerr := gitops.ReadResult(out.String())
		if rerr != nil && err == nil {
			t.Fatalf("%s: %v\n%s", cmd, rerr, out.String())
		}
		return res, out.String(), err
	}
	res, out, err := run(gitops.CmdAttest, gitops.Attest{Image: image, StatementsFile: file, Keyless: k})
	if err != nil {
		t.Fatalf("attest: %v\n%s", err, out)
	}
	subject := sigstorestack.Identity(sigstorestack.Workflow)
	if res.Attached == nil || !strings.Contains(res.Attached.KeyID, subject) || len(res.Attached.Envelopes) != 3 {
		t.Fatalf("attest: %+v", res.Attached)
	}
	outputs := out

	identity := k
	identity.Identity, identity.Issuer = subject, s.Issuer
	policy := gitops.Evidence{Keyless: &identity, SourceRepo: appRepo, SourceCommit: appCommit, FailOn: "HIGH"}
	res, out, err = run(gitops.CmdVerifyEvidence, gitops.VerifyEvidence{Image: image, Evidence: policy})
	if err != nil || !strings.HasSuffix(res.Output, "PASS") || !strings.Contains(res.Output, "signed by "+subject) {
		t.Fatalf("verify-evidence by the deploy workflow's identity: %v\n%s", err, out)
	}
	outputs += out

	other := identity
	other.Identity = sigstorestack.Identity("wanderlust-app/wanderlust/.github/workflows/pr.yml@refs/pull/7/merge")
	policy.Keyless = &other
	res, out, err = run(gitops.CmdVerifyEvidence, gitops.VerifyEvidence{Image: image, Evidence: policy})
	if err == nil || !strings.Contains(res.Error, image) || !strings.Contains(res.Error, "signed by "+subject) || !strings.Contains(res.Error, "want "+other.Identity) {
		t.Fatalf("verify-evidence by another identity: %v\n%s", err, out)
	}
	outputs += out

	// Bad input changes nothing: no token, a bad identity expression.
	flush()
	var attested bool
	for _, sp := range spans.Spans() {
		outputs += "\n" + sp.Name + "\n" + sp.Text
		attested = attested || sp.Name == "evidence.attest" && strings.Contains(sp.Text, subject)
	}
	if !attested {
		t.Errorf("no evidence.attest span naming the identity: %+v", spans.Spans())
	}
	env = map[string]string{}
	if _, _, err := run(gitops.CmdAttest, gitops.Attest{Image: image, StatementsFile: file, Keyless: k}); err == nil || !strings.Contains(err.Error(), "id-token: write") {
		t.Fatalf("attest without a token: %v", err)
	}
	bad := identity
	bad.Identity, bad.IdentityRegexp = "", "("
	if _, _, err := run(gitops.CmdVerifyEvidence, gitops.VerifyEvidence{Image: image, Evidence: gitops.Evidence{Keyless: &bad}}); err == nil || !strings.Contains(err.Error(), "--verify-identity-regexp") {
		t.Fatalf("a bad identity expression: %v", err)
	}
	secrets := []string{s.RequestToken}
	for _, tok := range s.Issued() {
		// Whole, its signature, and its first 100 characters (spans truncate long values).
		secrets = append(secrets, tok, strings.Split(tok, ".")[2], tok[:100])
	}
	if len(secrets) < 3 {
		t.Fatal("attest did not request its token")
	}
	for _, secret := range secrets {
		if strings.Contains(outputs, secret) {
			t.Fatalf("a token is in the program's output:\n%s", outputs)
		}
	}
}
