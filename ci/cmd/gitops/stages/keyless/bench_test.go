package keyless_test

// P7 and P8, keyless: what signing keyless adds to a publish of both images (one Fulcio certificate,
// four bundles per image each logged in Rekor v2 with a TSA timestamp, stored as referrers), and the
// gate checking both by identity — on the local Sigstore (loopback) and go-containerregistry's
// registry, with key mode measured in the same run for comparison.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/cmd/gitops/internal/sigstorestack"
	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/keyless"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
	"wanderlust.dev/pipeline/ci/testsupport/testkeys"
)

func BenchmarkKeyless(b *testing.B) {
	const rounds, layerBytes, layers = 3, 16 << 20, 4
	sbom := fixtures.Read(b, fixtures.Trivy(b), "sbom.cdx.json")
	s := sigstorestack.Start(b)
	tr, err := keyless.TrustedRoot(s.TrustedRoot, nil)
	if err != nil {
		b.Fatal(err)
	}
	checker, err := keyless.NewChecker(tr, keyless.Identity{Subject: sigstorestack.Identity(sigstorestack.Workflow), Issuer: s.Issuer})
	if err != nil {
		b.Fatal(err)
	}
	keys := testkeys.New(b, []byte("pw"))
	ctx := context.Background()
	policy := evidence.Policy{SourceRepo: "https://github.com/wanderlust-app/wanderlust", FailOn: "HIGH"}
	var publishT, keyT, keylessT, verifyT []time.Duration
	for round := 0; round < rounds; round++ {
		host := strings.TrimPrefix(registryHost(b, true), "http://")
		refs := map[string]string{}
		start := time.Now()
		for _, c := range []string{"backend", "frontend"} {
			img, err := random.Image(layerBytes, layers)
			if err != nil {
				b.Fatal(err)
			}
			refs[c] = push(b, host, c, round, img)
		}
		publishT = append(publishT, time.Since(start))
		statements := func(c, ref string) []evidence.Statement {
			d, _ := evidence.ParseDigest(ref)
			st1, _ := evidence.SBOM(d, sbom)
			st2, err := evidence.Provenance(d, evidence.Build{Component: c, Version: "1.0.0", SourceRepo: policy.SourceRepo,
				SourceCommit: strings.Repeat("a", 40), BuilderID: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			st3, _ := evidence.ScanVerdictStatement(d, evidence.NewVerdict("trivy", []findings.Finding{}, findings.DefaultPolicy(), time.Now()))
			return []evidence.Statement{st1, st2, st3}
		}
		// Key mode, for comparison.
		start = time.Now()
		for c, ref := range refs {
			if _, err := keys.Signer.Attach(ctx, ref, statements(c, ref), evidence.Remote{}); err != nil {
				b.Fatal(err)
			}
		}
		keyT = append(keyT, time.Since(start))
		// Keyless: what publish and deploy run (one signer, as one attest per image does).
		start = time.Now()
		for c, ref := range refs {
			signer, err := keyless.NewSigner(keyless.SignOptions{Services: keyless.Services{FulcioURL: s.FulcioURL, RekorURL: s.RekorURL, TSAURL: s.TSAURL},
				Token: keyless.TokenSource{RequestURL: s.RequestURL, RequestToken: s.RequestToken}, TrustedRoot: tr})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := signer.Attach(ctx, ref, statements(c, ref), evidence.Remote{}); err != nil {
				b.Fatal(err)
			}
		}
		keylessT = append(keylessT, time.Since(start))
		// The gate by identity, both images.
		start = time.Now()
		for _, ref := range refs {
			rep, err := evidence.Verify(ctx, ref, checker, policy, evidence.Remote{})
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := rep.Pieces["signature"]; !ok {
				b.Fatalf("not signed: %s", rep.Summary())
			}
		}
		verifyT = append(verifyT, time.Since(start))
	}
	p, k, kl, v := median(publishT), median(keyT), median(keylessT), median(verifyT)
	fmt.Printf("BENCH P7 mode=keyless evidence_ms=%d key_evidence_ms=%d publish_ms=%d ratio=%.3f images=2 image_mib=%d runs=%d goal_ms=15000\n",
		kl.Milliseconds(), k.Milliseconds(), p.Milliseconds(), float64(kl)/float64(p), layerBytes*layers>>20, rounds)
	fmt.Printf("BENCH P8 mode=keyless verify_ms=%d images=2 runs=%d goal_ms=1000\n", v.Milliseconds(), rounds)
	b.ReportMetric(float64(kl.Milliseconds()), "evidence_ms")
	b.ReportMetric(float64(v.Milliseconds()), "verify_ms")
}

func push(b *testing.B, host, c string, round int, img v1.Image) string {
	tag, _ := name.NewTag(fmt.Sprintf("%s/wanderlust-app/wanderlust-%s:1.%d.0", host, c, round))
	if err := remote.Write(tag, img); err != nil {
		b.Fatal(err)
	}
	d, _ := img.Digest()
	return tag.String() + "@" + d.String()
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
