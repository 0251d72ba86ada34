package main

// Keyless signing and the gate by identity: the module checks the flags; the GitOps program signs
// and verifies (sigstore-go stays out of the module's Go graph).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/stages/evidence"
)

// statementsFile is where attest reads the statements in the program's container.
const statementsFile = "/tmp/wanderlust-statements.json"

// keylessSettings are --keyless's Sigstore and trusted root, checked (nothing fetched).
func (m *Wanderlust) keylessSettings(ctx context.Context) (gitops.Keyless, error) {
	k := gitops.Keyless{FulcioURL: m.FulcioURL, RekorURL: m.RekorURL, TSAURL: m.TsaURL}
	if err := evidence.CheckServices(k.FulcioURL, k.RekorURL, k.TSAURL); err != nil {
		return k, err
	}
	if m.TrustedRoot != nil {
		tr, err := m.TrustedRoot.Contents(ctx)
		if err != nil {
			return k, fmt.Errorf("--trusted-root: %w", err)
		}
		if !json.Valid([]byte(tr)) {
			return k, errors.New("--trusted-root: not JSON (want a Sigstore trusted_root.json)")
		}
		k.TrustedRoot = tr
	}
	return k, nil
}

// keylessSigner is --keyless's signer, checked before anything is built: a token can be had.
func (m *Wanderlust) keylessSigner(ctx context.Context) (*programSigner, error) {
	if m.SigningKey != nil {
		return nil, errors.New("--keyless and --signing-key: sign one way")
	}
	if err := evidence.CheckTokenSource(m.OidcToken != nil, m.OidcRequestURL != nil, m.OidcRequestToken != nil); err != nil {
		return nil, err
	}
	k, err := m.keylessSettings(ctx)
	if err != nil {
		return nil, err
	}
	return &programSigner{m: m, k: k}, nil
}

// programSigner signs keyless by running the program's attest.
type programSigner struct {
	m *Wanderlust
	k gitops.Keyless
}

// Attach runs attest for one image, the statements in a file, the token's source as secrets.
func (p *programSigner) Attach(ctx context.Context, image string, statements []evidence.Statement, _ evidence.Remote) (*evidence.Attached, error) {
	b, err := json.Marshal(statements)
	if err != nil {
		return nil, err
	}
	ctr, err := p.m.program()
	if err != nil {
		return nil, err
	}
	// Only what signing needs: the registry's login and the token's source (not git's, Argo CD's…).
	secrets := map[string]*dagger.Secret{gitops.EnvRegistryPassword: p.m.RegistryPassword,
		gitops.EnvOIDCToken: p.m.OidcToken, gitops.EnvOIDCRequestURL: p.m.OidcRequestURL, gitops.EnvOIDCRequestToken: p.m.OidcRequestToken}
	res, err := runner.Run(ctx, ctr.WithNewFile(statementsFile, string(b)), gitops.CmdAttest,
		gitops.Attest{Config: p.m.config(), Image: image, StatementsFile: statementsFile, Keyless: p.k}, secrets)
	if err != nil {
		return nil, err
	}
	if res.Error != "" || res.Attached == nil {
		return nil, fmt.Errorf("keyless signing of %s: %s", image, res.Error)
	}
	return res.Attached, nil
}

// identityGate is the gate's keyless part: nil without --verify-identity[-regexp].
func (m *Wanderlust) identityGate(ctx context.Context) (*gitops.Keyless, error) {
	id := evidence.Identity{Subject: m.VerifyIdentity, SubjectRegexp: m.VerifyIdentityRegexp, Issuer: m.VerifyIssuer, IssuerRegexp: m.VerifyIssuerRegexp}
	if id == (evidence.Identity{}) {
		return nil, nil
	}
	if m.VerifyKey != nil {
		return nil, errors.New("--verify-key and --verify-identity: verify one way")
	}
	if err := id.Validate(); err != nil {
		return nil, err
	}
	k, err := m.keylessSettings(ctx)
	if err != nil {
		return nil, err
	}
	k.Identity, k.IdentityRegexp, k.Issuer, k.IssuerRegexp = id.Subject, id.SubjectRegexp, id.Issuer, id.IssuerRegexp
	return &k, nil
}

// verifyByIdentity is verify-evidence when the gate is keyless: the program checks.
func (m *Wanderlust) verifyByIdentity(ctx context.Context, image string, e gitops.Evidence) (string, error) {
	ctr, err := m.program()
	if err != nil {
		return "", err
	}
	// Only the registry's login: reading evidence needs no other credential.
	res, err := runner.Run(ctx, ctr, gitops.CmdVerifyEvidence, gitops.VerifyEvidence{Config: m.config(), Image: image, Evidence: e},
		map[string]*dagger.Secret{gitops.EnvRegistryPassword: m.RegistryPassword})
	if err != nil {
		return "", err
	}
	if res.Error != "" {
		return "", fmt.Errorf("%s\n\n%s", res.Error, res.Output)
	}
	return res.Output, nil
}
