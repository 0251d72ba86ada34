package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

// --keyless and the gate by identity are checked by the module before anything runs; signing
// and verifying run the program's attest and verify-evidence with the identity token's source as
// secret variables and the statements in a file, never in an argument.
func TestKeylessRunsTheProgramsAttestAndVerifyEvidence(t *testing.T) {
	_, runs := startProgramSession(t, planted, func(field, q string) (any, error) {
		if field == "plaintext" {
			return planted, nil
		}
		return daggerfake.Default(field, q)
	})
	c := useSession(t)
	ctx := context.Background()
	url, tok := c.Secret("env://ACTIONS_ID_TOKEN_REQUEST_URL"), c.Secret("env://ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	mk := func(keyless bool, oidcURL, oidcToken any, fulcio, identity, identityRegexp, issuer string) *Wanderlust {
		m := New(nil, "registry.example.invalid/wanderlust-app", "", nil, "", "main", "x-access-token", nil, "", nil, false, false, false, "", "", "", 0,
			"starttls", "", nil, "", nil, nil, nil, nil, nil, keyless, nil, nil, nil, fulcio, "", "", nil, identity, identityRegexp, issuer, "", "https://github.com/wanderlust-app/wanderlust", "", "", nil)
		if oidcURL != nil {
			m.OidcRequestURL = url
		}
		if oidcToken != nil {
			m.OidcRequestToken = tok
		}
		return m
	}
	commit := strings.Repeat("a", 40)
	for name, m := range map[string]*Wanderlust{
		"no token":             mk(true, nil, nil, "", "", "", ""),
		"half the GitHub pair": mk(true, url, nil, "", "", "", ""),
		"credentials in a URL": mk(true, url, tok, "https://user:pw@fulcio.example.invalid", "", "", ""),
	} {
		if _, err := m.evidenceOptions(ctx, commit, false); err == nil || strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: accepted, or the error shows the credentials: %v", name, err)
		}
	}
	both := mk(true, url, tok, "", "", "", "")
	both.SigningKey = c.Secret("env://KEY")
	if _, err := both.evidenceOptions(ctx, commit, false); err == nil || !strings.Contains(err.Error(), "sign one way") {
		t.Errorf("--keyless with --signing-key: %v", err)
	}
	for name, m := range map[string]*Wanderlust{
		"identity without issuer": mk(false, nil, nil, "", "https://github.com/a/b/.github/workflows/deploy.yml@refs/heads/main", "", ""),
		"two identity rules":      mk(false, nil, nil, "", "x", "y", "https://token.actions.githubusercontent.com"),
		"bad expression":          mk(false, nil, nil, "", "", "(", "https://token.actions.githubusercontent.com"),
	} {
		if _, err := m.VerifyEvidence(ctx, "registry.example.invalid/wanderlust-app/wanderlust-backend@sha256:"+strings.Repeat("1", 64), "", "HIGH"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n := len(runs.Runs()); n != 0 {
		t.Fatalf("the program ran for flags the module checks itself: %d runs", n)
	}

	// Signing: attest, one image, the statements as a file.
	m := mk(true, url, tok, "https://fulcio.example.invalid", "", "", "")
	m.GitToken, m.ArgocdToken = c.Secret("env://GIT_TOKEN"), c.Secret("env://ARGOCD_TOKEN")
	o, err := m.evidenceOptions(ctx, commit, false)
	if err != nil {
		t.Fatal(err)
	}
	image := "registry.example.invalid/wanderlust-app/wanderlust-backend@sha256:" + strings.Repeat("1", 64)
	d, _ := evidence.ParseDigest(image)
	bom, _ := evidence.SBOM(d, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`))
	if _, err := o.Signer.Attach(ctx, image, []evidence.Statement{bom}, evidence.Remote{}); err == nil {
		t.Fatal("attest against an unreachable registry succeeded")
	}
	// The gate by identity: verify-evidence.
	g := mk(false, nil, nil, "", "", `^https://github\.com/wanderlust-app/wanderlust/\.github/workflows/deploy\.yml@`, "https://token.actions.githubusercontent.com")
	g.GitToken = c.Secret("env://GIT_TOKEN")
	if _, err := g.VerifyEvidence(ctx, image, commit, "HIGH"); err == nil {
		t.Fatal("verify-evidence of an unreachable image passed")
	}
	got := runs.Runs()
	if len(got) != 2 || got[0].Args[1] != gitops.CmdAttest || got[1].Args[1] != gitops.CmdVerifyEvidence {
		t.Fatalf("program runs %d, want attest then verify-evidence", len(got))
	}
	var a gitops.Attest
	got[0].request(t, &a)
	if a.Image != image || a.StatementsFile != statementsFile || !slices.Contains(got[0].Files, statementsFile) || a.Keyless.FulcioURL != "https://fulcio.example.invalid" {
		t.Errorf("attest request %+v, files %q", a, got[0].Files)
	}
	for _, s := range []string{gitops.EnvOIDCRequestURL, gitops.EnvOIDCRequestToken} {
		if !slices.Contains(got[0].Secrets, s) {
			t.Errorf("attest lacks the secret variable %s: %q", s, got[0].Secrets)
		}
	}
	for _, x := range got {
		for _, s := range []string{gitops.EnvGitToken, gitops.EnvArgoCDToken, gitops.EnvSMTPPassword, gitops.EnvWebhookURL} {
			if slices.Contains(x.Secrets, s) {
				t.Errorf("%s gets %s, which it does not need", x.Args[1], s)
			}
		}
	}
	if strings.Contains(strings.Join(got[0].Args, " ")+strings.Join(got[0].Env, " "), planted) || strings.Contains(strings.Join(got[0].Args, " "), "CycloneDX") {
		t.Errorf("a token or the statements are in the arguments: %q", got[0].Args)
	}
	var v gitops.VerifyEvidence
	got[1].request(t, &v)
	if v.Evidence.Keyless == nil || v.Evidence.Keyless.IdentityRegexp == "" || v.Evidence.Keyless.Issuer != "https://token.actions.githubusercontent.com" ||
		v.Evidence.SourceCommit != commit || v.Evidence.VerifyKeyPEM != "" {
		t.Errorf("verify-evidence request %+v", v.Evidence)
	}
}
