package deploy

import (
	"context"
	"strings"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
	"wanderlust.dev/pipeline/ci/testsupport/gitserver"
	"wanderlust.dev/pipeline/ci/testsupport/testkeys"
)

const (
	appRepo   = "https://github.com/wanderlust-app/wanderlust"
	appCommit = "89abcdef0123456789abcdef0123456789abcdef"
)

// release is how an image's evidence is made (or tampered with) for the test.
type release struct {
	signer    evidence.Attacher
	commit    string
	findings  []findings.Finding
	skipSBOM  bool
	unsigned  bool
	retagFrom bool // push an unsigned image over the tag after signing the first
}

// publish pushes image:tag with the evidence the release says and returns the tag reference.
func (w *world) publish(t *testing.T, image, tag string, rel release) string {
	t.Helper()
	ref := w.push(t, image, tag)
	if !rel.unsigned {
		imgs, err := registry.Resolve(context.Background(), []string{ref}, registry.Auth{})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := evidence.ParseDigest(imgs[0].Pinned())
		var sts []evidence.Statement
		if !rel.skipSBOM {
			st, err := evidence.SBOM(d, fixtures.Read(t, fixtures.Trivy(t), "sbom.cdx.json"))
			if err != nil {
				t.Fatal(err)
			}
			sts = append(sts, st)
		}
		prov, err := evidence.Provenance(d, evidence.Build{Component: image, Version: tag, SourceRepo: appRepo, SourceCommit: rel.commit, BuilderID: "test"})
		if err != nil {
			t.Fatal(err)
		}
		verdict, err := evidence.ScanVerdictStatement(d, evidence.NewVerdict("trivy", rel.findings, findings.DefaultPolicy(), time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rel.signer.Attach(context.Background(), imgs[0].Pinned(), append(sts, prov, verdict), evidence.Remote{}); err != nil {
			t.Fatal(err)
		}
	}
	if rel.retagFrom {
		w.push(t, image, tag) // someone pushes another, unsigned image under the same tag
	}
	return ref
}

// Promote checks the evidence of exactly what the source runs, and refuses — naming the image and
// the piece, pushing nothing — a re-tagged unsigned image, a signature by another key, provenance
// for another commit, a failing scan verdict and a missing SBOM. --allow-unverified passes and is
// recorded; proven images are promoted pinned to the digests that were verified.
func TestPromoteRefusesUnprovenImages(t *testing.T) {
	w := setup(t, "evd")
	keys := testkeys.New(t, []byte("pw"))
	ours, verifier := keys.Signer, keys.Verifier
	other := testkeys.New(t, []byte("pw")).Signer
	ctx := context.Background()
	// No commit in the policy: promote requires the one the source environment's deployment recorded.
	gate := &Evidence{Verifier: verifier, Policy: evidence.Policy{SourceRepo: appRepo, FailOn: "HIGH"}}
	devBump := bump.Options{Git: w.gitOpts("evd"), Env: "dev", SourceCommit: appCommit}
	high := []findings.Finding{{Tool: "trivy", ID: "CVE-2099-0002", Severity: findings.High}}
	good := release{signer: ours, commit: appCommit}

	// deploy --require-evidence refuses an unsigned image before pushing anything.
	before, _ := w.git.Head("evd", "main")
	argo := w.argo(t, "evd-dev")
	unsigned := w.publish(t, "wanderlust-backend", "0.9.0", release{unsigned: true})
	rep, err := Run(ctx, Options{Images: []string{unsigned}, Bump: bump.Options{Git: w.gitOpts("evd"), Env: "dev"}, Argo: &argo, Evidence: gate}, nil)
	if err == nil || !strings.Contains(err.Error(), "signature: none stored") || !strings.Contains(err.Error(), "wanderlust-backend@sha256:") {
		t.Fatalf("deploy of an unsigned image: %v", err)
	}
	if after, _ := w.git.Head("evd", "main"); after != before || rep.Result != report.Failed {
		t.Fatalf("a refused deploy pushed (or did not fail): %s", rep.Text())
	}

	cases := []struct {
		name                string
		backend, frontend   release
		wantBack, wantFront string // the piece named for each image ("" = passes)
	}{
		{"re-tagged unsigned image and a signature by another key",
			release{signer: ours, commit: appCommit, retagFrom: true}, release{signer: other, commit: appCommit},
			"signature: none stored", "signature: 1 stored, none valid"},
		{"provenance for another commit and a failing scan verdict",
			release{signer: ours, commit: strings.Repeat("e", 40)}, release{signer: ours, commit: appCommit, findings: high},
			"provenance: built from commit eeee", "scan-verdict: the scan failed its own policy"},
		{"missing SBOM", release{signer: ours, commit: appCommit, skipSBOM: true}, good, "sbom: no CycloneDX attestation", ""},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tag := "3.0." + string(rune('0'+i))
			backend := w.publish(t, "wanderlust-backend", tag, tc.backend)
			frontend := w.publish(t, "wanderlust-frontend", tag, tc.frontend)
			argo := w.argo(t, "evd-dev")
			if _, err := Run(ctx, Options{Images: []string{backend, frontend}, Bump: devBump, Argo: &argo}, nil); err != nil {
				t.Fatal(err)
			}
			before, _ := w.git.Head("evd", "main")
			rep, err := Promote(ctx, PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("evd"), Argo: w.argo(t, ""),
				FromApp: "evd-dev", ToApp: "evd-staging", Evidence: gate})
			if err == nil {
				t.Fatalf("promoted:\n%s", rep.Text())
			}
			t.Logf("refused: %v", err)
			for img, want := range map[string]string{"wanderlust-backend@": tc.wantBack, "wanderlust-frontend@": tc.wantFront} {
				named := strings.Contains(err.Error(), img)
				if want == "" && named {
					t.Errorf("%s refused though proven: %v", img, err)
				}
				if want != "" && (!named || !strings.Contains(err.Error(), want)) {
					t.Errorf("err = %v\nwant %s refused with %q", err, img, want)
				}
			}
			if after, _ := w.git.Head("evd", "main"); after != before {
				t.Error("a refused promotion pushed")
			}
			if tc.name == "missing SBOM" {
				// --allow-unverified promotes it anyway, and the report says so.
				allowed := *gate
				allowed.AllowUnverified = "hotfix, approved by the on-call"
				rep, err := Promote(ctx, PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("evd"), Argo: w.argo(t, ""),
					FromApp: "evd-dev", ToApp: "evd-staging", Evidence: &allowed})
				if err != nil {
					t.Fatalf("%v\n%s", err, rep.Text())
				}
				if !strings.Contains(rep.Text(), "--allow-unverified: hotfix, approved by the on-call") {
					t.Errorf("the override is not in the report:\n%s", rep.Text())
				}
			}
		})
	}

	// Proven images are promoted at the verified digests, and the report lists their evidence.
	backend := w.publish(t, "wanderlust-backend", "4.0.0", good)
	frontend := w.publish(t, "wanderlust-frontend", "4.0.0", good)
	argo = w.argo(t, "evd-dev")
	if _, err := Run(ctx, Options{Images: []string{backend, frontend}, Bump: devBump, Argo: &argo, Evidence: gate}, nil); err != nil {
		t.Fatal(err)
	}
	rep, err = Promote(ctx, PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("evd"), Argo: w.argo(t, ""),
		FromApp: "evd-dev", ToApp: "evd-staging", Evidence: gate})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	imgs, _ := registry.Resolve(ctx, []string{backend, frontend}, registry.Auth{})
	staging, _ := w.git.Show("evd", "main", "kubernetes/overlays/staging/kustomization.yaml")
	for _, i := range imgs {
		if !strings.Contains(staging, i.Digest) {
			t.Errorf("staging is not pinned to the verified digest %s:\n%s", i.Digest, staging)
		}
	}
	// The promotion commit carries the source commit on (so that the next promotion checks it too).
	head, _ := w.git.Head("evd", "main")
	if msg := gitLog(t, w, head); !strings.Contains(msg, "Source-Commit: "+appCommit) {
		t.Errorf("the promotion commit does not carry Source-Commit %s:\n%s", appCommit, msg)
	}
	text := rep.Text()
	for _, want := range []string{"source commit " + appCommit, "signed by key " + verifier.KeyID, "CycloneDX 1.7", appRepo + "@" + appCommit, "scan-verdict: sha256:"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}

	// Never a check skipped in silence: images that dev runs from a commit without Source-Commit (a
	// plain bump) cannot be tied to their application commit, and a gate without a source repository
	// cannot check provenance — both refused, saying why, nothing pushed.
	backend, frontend = w.publish(t, "wanderlust-backend", "5.0.0", good), w.publish(t, "wanderlust-frontend", "5.0.0", good)
	argo = w.argo(t, "evd-dev")
	if _, err := Run(ctx, Options{Images: []string{backend, frontend}, Bump: bump.Options{Git: w.gitOpts("evd"), Env: "dev"}, Argo: &argo}, nil); err != nil {
		t.Fatal(err)
	}
	before, _ = w.git.Head("evd", "main")
	noRepo := *gate
	noRepo.Policy.SourceRepo = ""
	for want, g := range map[string]*Evidence{"cannot be established": gate, "no source repository is configured (--source-repo)": &noRepo} {
		_, err := Promote(ctx, PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("evd"), Argo: w.argo(t, ""), FromApp: "evd-dev", ToApp: "evd-staging", Evidence: g})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--allow-unverified") {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if after, _ := w.git.Head("evd", "main"); after != before {
		t.Error("a promotion that could not be verified pushed")
	}
}

// gitLog is a commit's message on the test's remote.
func gitLog(t *testing.T, w *world, sha string) string {
	t.Helper()
	out, err := gitserver.Output(w.git.GitDir("evd"), "log", "-1", "--format=%B", sha)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
