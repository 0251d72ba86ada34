package bench

// P7: what producing and attaching the evidence (SBOM, provenance and scan-verdict statements,
// signing, storing in cosign's tags) adds to a publish of both images, against the local registry
// (go-containerregistry's, on loopback); the Trivy run that writes the SBOM is not included.
// P8: the promotion gate: collecting and verifying both images' evidence.

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/testsupport/testkeys"
)

const (
	layerBytes = 16 << 20 // four layers of 16 MiB: an image of 64 MiB, the size of a Node runtime image
	layers     = 4
	rounds7    = 3
)

func BenchmarkEvidence(b *testing.B) {
	sbom, err := os.ReadFile("../../shared/fixtures/trivy/sbom.cdx.json")
	if err != nil {
		b.Fatal(err)
	}
	vulns, err := os.ReadFile("../../shared/fixtures/trivy/fs-vuln.json")
	if err != nil {
		b.Fatal(err)
	}
	fs, err := findings.ParseTrivy(vulns)
	if err != nil {
		b.Fatal(err)
	}
	keys := testkeys.New(b, []byte("pw"))
	signer, verifier := keys.Signer, keys.Verifier
	ctx := context.Background()
	var publishT, evidenceT, verifyT []time.Duration
	for round := 0; round < rounds7; round++ {
		srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
		host := strings.TrimPrefix(srv.URL, "http://")
		imgs := map[string]v1.Image{}
		for _, c := range []string{"backend", "frontend"} {
			img, err := random.Image(layerBytes, layers)
			if err != nil {
				b.Fatal(err)
			}
			imgs[c] = img
		}
		// Baseline: the publish, both images pushed.
		start := time.Now()
		refs := map[string]string{}
		for c, img := range imgs {
			tag, _ := name.NewTag(fmt.Sprintf("%s/wanderlust-app/wanderlust-%s:1.%d.0", host, c, round))
			if err := remote.Write(tag, img); err != nil {
				b.Fatal(err)
			}
			d, _ := img.Digest()
			refs[c] = tag.String() + "@" + d.String()
		}
		publishT = append(publishT, time.Since(start))

		// The evidence of both: statements, signatures, storage.
		start = time.Now()
		for c, ref := range refs {
			d, _ := evidence.ParseDigest(ref)
			st1, err := evidence.SBOM(d, sbom)
			if err != nil {
				b.Fatal(err)
			}
			st2, err := evidence.Provenance(d, evidence.Build{Component: c, Version: "1.0.0", SourceRepo: "https://github.com/wanderlust-app/wanderlust",
				SourceCommit: strings.Repeat("a", 40), BuilderID: "bench", BaseImages: []evidence.BaseImage{{Ref: "docker.io/library/node:20", Digest: "sha256:" + strings.Repeat("b", 64)}}})
			if err != nil {
				b.Fatal(err)
			}
			st3, err := evidence.ScanVerdictStatement(d, evidence.NewVerdict("trivy", fs, findings.DefaultPolicy(), time.Now()))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := signer.Attach(ctx, ref, []evidence.Statement{st1, st2, st3}, evidence.Remote{}); err != nil {
				b.Fatal(err)
			}
		}
		evidenceT = append(evidenceT, time.Since(start))

		// The gate: both images' evidence collected and judged (the fixture's findings fail the
		// verdict; the judgement is still made in full).
		start = time.Now()
		for _, ref := range refs {
			if _, err := evidence.Verify(ctx, ref, verifier, evidence.Policy{SourceRepo: "https://github.com/wanderlust-app/wanderlust", FailOn: "HIGH"}, evidence.Remote{}); err != nil {
				b.Fatal(err)
			}
		}
		verifyT = append(verifyT, time.Since(start))
		srv.Close()
	}
	p, e, v := median(publishT), median(evidenceT), median(verifyT)
	fmt.Printf("BENCH P7 evidence_ms=%d publish_ms=%d ratio=%.3f images=2 image_mib=%d runs=%d goal_ms=15000\n",
		e.Milliseconds(), p.Milliseconds(), float64(e)/float64(p), layerBytes*layers>>20, rounds7)
	fmt.Printf("BENCH P8 verify_ms=%d images=2 runs=%d goal_ms=1000\n", v.Milliseconds(), rounds7)
	b.ReportMetric(float64(e.Milliseconds()), "evidence_ms")
	b.ReportMetric(float64(v.Milliseconds()), "verify_ms")
}
