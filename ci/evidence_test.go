package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/testsupport/cosigncli"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
	"wanderlust.dev/pipeline/ci/testsupport/fixtures"
)

var publishAddress = regexp.MustCompile(`publish\(address:"([^"]+)"\)`)

// pushRandom pushes a random image to ref and returns its digest.
func pushRandom(t *testing.T, ref string) string {
	t.Helper()
	img, _ := random.Image(256, 1)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

// Publish with --signing-key, on the stand-in session (the containers are a plan) and a real
// registry (the pushes and the evidence are real): the real cosign CLI verifies each image's
// signature and attestations; the provenance names the source and the Dockerfile's base image at
// its digest; neither the key nor its password reaches the engine's queries.
func TestPublishWithASigningKeyProvesEachImage(t *testing.T) {
	cli := cosigncli.New(t)
	keys := cli.GenerateKeyPair(t, planted)
	priv, pubKey := keys.Private, keys.Public

	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	baseDigest := pushRandom(t, host+"/library/node:20")
	trivy := fixtures.Trivy(t)

	var session *daggerfake.Server
	session = daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		q = session.Expand(q)
		file := func(path string) bool { return daggerfake.HasCall(q, "file", `path:"`+path+`"`) }
		switch {
		case field == "plaintext" && strings.Contains(q, "SIGNING_KEY"):
			return string(priv), nil
		case field == "plaintext":
			return planted, nil
		case publishAddress.MatchString(q): // a synced container is published through node(id:…)
			addr := publishAddress.FindStringSubmatch(q)[1]
			return addr + "@" + pushRandom(t, addr), nil
		case field == "exists":
			return true, nil
		case field == "contents" && file("Dockerfile"):
			return "FROM " + host + "/library/node:20 AS deps\nFROM deps\n", nil
		case field == "contents" && file("/out/sbom.cdx.json"):
			return string(fixtures.Read(t, trivy, "sbom.cdx.json")), nil
		case field == "contents" && file("/out/vulns.json"):
			return string(fixtures.Read(t, trivy, "fs-vuln.json")), nil
		}
		return daggerfake.Default(field, q)
	}))
	c := useSession(t)
	m := &Wanderlust{Source: c.Directory(), Registry: host + "/wanderlust-app", SourceRepo: "https://github.com/wanderlust-app/wanderlust",
		SigningKey: c.Secret("env://SIGNING_KEY"), SigningPassword: c.Secret("env://SIGNING_PASSWORD")}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	out, err := m.Publish(context.Background(), "1.4.0", commit, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("publish printed:\n%s", out)
	lines := strings.Split(out, "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "backend evidence signed by SHA256:") || !strings.Contains(lines[3], "frontend evidence") {
		t.Fatalf("output:\n%s", out)
	}
	if all := session.All(); strings.Contains(all, "PRIVATE KEY") || strings.Contains(all, planted) {
		t.Error("the signing key or its password is in an engine query")
	}
	ver, _ := evidence.LoadVerifier(pubKey)
	for _, l := range lines[:2] {
		ref := strings.Fields(l)[1]
		common := []string{"--key", keys.PublicPath(), "--insecure-ignore-tlog=true", "--allow-http-registry=true"}
		for _, args := range [][]string{{"verify"}, {"verify-attestation", "--type", "slsaprovenance1"}, {"verify-attestation", "--type", "cyclonedx"}, {"verify-attestation", "--type", evidence.ScanVerdict}} {
			if o, err := cli.Run(keys.Dir, append(append(args, common...), ref)...); err != nil {
				t.Fatalf("cosign %v %s: %v\n%s", args, ref, err, o)
			}
		}
		f, err := ver.Collect(context.Background(), ref, evidence.Remote{})
		if err != nil {
			t.Fatal(err)
		}
		prov := string(f.Attestations[evidence.SLSAProvenance].Predicate)
		if !strings.Contains(prov, host+"/library/node:20") || !strings.Contains(prov, strings.TrimPrefix(baseDigest, "sha256:")) || !strings.Contains(prov, commit) {
			t.Errorf("provenance lacks the base image digest or the commit: %s", prov)
		}
		var v evidence.Verdict
		_ = json.Unmarshal(f.Attestations[evidence.ScanVerdict].Predicate, &v)
		if v.Pass || v.Counts["CRITICAL"] == 0 {
			t.Errorf("the fixture's CRITICAL finding should fail the verdict: %+v", v)
		}
	}
}

// A wrong signing password, or signing without the source repository or a full commit, fails before
// anything is built or pushed.
func TestPublishEvidenceInputsAreCheckedBeforeBuilding(t *testing.T) {
	priv := cosigncli.New(t).GenerateKeyPair(t, "right").Private
	for _, tc := range []struct {
		name, password, repo, commit, want string
	}{
		{"wrong password", "wrong", "https://github.com/x/y", strings.Repeat("a", 40), "--signing-password"},
		{"no source repository", "right", "", strings.Repeat("a", 40), "--source-repo"},
		{"short commit", "right", "https://github.com/x/y", "abc1234", "--source-commit"},
		{"source repository with a token", "right", "https://ci:ghp_planted777@github.com/x/y", strings.Repeat("a", 40), "--source-repo carries credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s *daggerfake.Server
			s = daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
				if field == "plaintext" {
					if strings.Contains(s.Expand(q), "SIGNING_KEY") {
						return string(priv), nil
					}
					return tc.password, nil
				}
				return daggerfake.Default(field, q)
			}))
			c := useSession(t)
			m := &Wanderlust{Source: c.Directory(), Registry: "registry.invalid/wanderlust-app", SourceRepo: tc.repo,
				SigningKey: c.Secret("env://SIGNING_KEY"), SigningPassword: c.Secret("env://SIGNING_PASSWORD")}
			_, err := m.Publish(context.Background(), "1.4.0", tc.commit, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "ghp_planted777") {
				t.Fatalf("err = %v, want it to name %s (and no token)", err, tc.want)
			}
			if strings.Contains(s.All(), "withExec") {
				t.Error("something was built before the inputs were checked")
			}
		})
	}
}

// Without a key, each function says how it goes on: promote names --allow-unverified, deploy
// --require-evidence, and verify-evidence (which cannot go on) names neither.
func TestTheGateWithoutAKeySaysWhatTheFunctionOffers(t *testing.T) {
	m := &Wanderlust{}
	if _, err := m.VerifyEvidence(context.Background(), "registry.invalid/x:1", "", "HIGH"); err == nil ||
		!strings.Contains(err.Error(), "--verify-key") || strings.Contains(err.Error(), "--allow-unverified") {
		t.Errorf("verify-evidence: %v", err)
	}
	if _, err := m.gate(context.Background(), true, evidenceFlags{failOn: "HIGH"}, `to promote without it, --allow-unverified "reason"`); err == nil ||
		!strings.Contains(err.Error(), "--allow-unverified") {
		t.Errorf("promote: %v", err)
	}
}

// sbom: the constructor's Trivy DB mirror reaches Trivy; the registry login is used for the
// --registry host only (an --image elsewhere is pulled anonymously).
func TestSbomUsesTheMirrorAndTheOwnLoginOnly(t *testing.T) {
	var session *daggerfake.Server
	session = daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		q = session.Expand(q)
		if field == "contents" && daggerfake.HasCall(q, "file", `path:"/out/sbom.cdx.json"`) {
			return string(fixtures.Read(t, fixtures.Trivy(t), "sbom.cdx.json")), nil
		}
		return daggerfake.Default(field, q)
	}))
	c := useSession(t)
	m := &Wanderlust{Registry: "ghcr.io/acme", RegistryUsername: "bot", RegistryPassword: c.Secret("env://REGISTRY_TOKEN"), TrivyDBRepository: "mirror.invalid/trivy-db:2"}
	for image, login := range map[string]bool{"ghcr.io/acme/wanderlust-backend:1.0.0": true, "evil.example/acme/wanderlust-backend:1.0.0": false} {
		f, err := m.Sbom(context.Background(), "backend", image)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Contents(context.Background()); err != nil {
			t.Fatal(err)
		}
		all := session.Expand(session.All())
		if !strings.Contains(all, `"--db-repository","mirror.invalid/trivy-db:2"`) {
			t.Errorf("the Trivy DB mirror is not used: %s", all)
		}
		// The host alone, quoted, is withRegistryAuth's address (from() names the whole reference).
		if got := strings.Contains(all, `address:"`+strings.Split(image, "/")[0]+`"`); got != login {
			t.Errorf("%s: registry login sent %v, want %v", image, got, login)
		}
	}
}
