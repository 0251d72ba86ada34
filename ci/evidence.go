package main

// The evidence functions' bodies: signing at publish, the gate of deploy and promote, sbom and
// verify-evidence.

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/runner"
	"wanderlust.dev/pipeline/ci/stages/build"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/publish"
	"wanderlust.dev/pipeline/ci/stages/record"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/scan"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
)

// builderID names this module as the provenance's builder.
const builderID = "https://github.com/wanderlust-app/wanderlust/tree/main/ci"

// evidenceFlags are the gate's flags of promote.
type evidenceFlags struct {
	allowUnverified, sourceCommit, failOn string
}

// signer loads --signing-key; nil without one.
func (m *Wanderlust) signer(ctx context.Context) (*evidence.Signer, error) {
	if m.SigningKey == nil {
		if m.SigningPassword != nil {
			return nil, errors.New("--signing-password without --signing-key")
		}
		return nil, nil
	}
	key, err := plaintext(ctx, m.SigningKey)
	if err != nil {
		return nil, err
	}
	pw, err := plaintext(ctx, m.SigningPassword)
	if err != nil {
		return nil, err
	}
	return evidence.LoadSigner([]byte(key), []byte(pw))
}

// evidenceOptions are publish's evidence options, checked (key or keyless token, source repository
// and commit) before anything is built; nil without --signing-key or --keyless.
func (m *Wanderlust) evidenceOptions(ctx context.Context, sourceCommit string, skipTests bool) (*publish.EvidenceOptions, error) {
	var s evidence.Attacher
	if m.Keyless {
		ks, err := m.keylessSigner(ctx)
		if err != nil {
			return nil, err
		}
		s = ks
	} else {
		ks, err := m.signer(ctx)
		if err != nil || ks == nil {
			return nil, err
		}
		s = ks
	}
	auth, err := m.registryAuth(ctx)
	if err != nil {
		return nil, err
	}
	o := &publish.EvidenceOptions{Signer: s, Policy: findings.DefaultPolicy(), Registry: auth, Scan: scan.Options{TrivyDBRepository: m.TrivyDBRepository},
		Build: evidence.Build{SourceRepo: m.SourceRepo, SourceCommit: strings.ToLower(sourceCommit), BuilderID: builderID,
			BuilderVersion: builderVersion(), InvocationID: record.NewRunID(), Started: time.Now().UTC(),
			Parameters: map[string]any{"registry": m.Registry, "skipTests": skipTests}}}
	if err := o.Check(); err != nil {
		return nil, err
	}
	return o, nil
}

// builderVersion is the module's version as its build knows it (VCS revision when stamped).
func builderVersion() map[string]string {
	v := map[string]string{"scanner": scan.TrivyImage}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v["go"] = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v["module"] = s.Value
			}
		}
	}
	return v
}

// prove attaches the evidence of the published images: the base images of each build are
// resolved to digests (anonymously; a base image that cannot be resolved is recorded without one).
func (m *Wanderlust) prove(ctx context.Context, o *publish.EvidenceOptions, images map[string]*dagger.Container, pub []publish.Published) ([]publish.Proven, error) {
	o.BaseImages = map[string][]evidence.BaseImage{}
	for name := range images {
		refs, err := build.BaseImages(ctx, m.Source, name, build.Options{})
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			bi := evidence.BaseImage{Ref: ref}
			if imgs, err := registry.Resolve(ctx, []string{ref}, registry.Auth{}); err == nil {
				bi.Digest = imgs[0].Digest
			} else {
				logf("provenance: base image " + ref + ": no digest (" + err.Error() + ")")
			}
			o.BaseImages[name] = append(o.BaseImages[name], bi)
		}
	}
	return publish.Prove(ctx, dag, images, pub, *o)
}

// evidenceLines are publish's output lines for the evidence.
func evidenceLines(proven []publish.Proven) []string {
	var lines []string
	for _, p := range proven {
		e := p.Attached.Envelopes
		state := "pass"
		if !p.Verdict.Pass {
			state = "fail"
		}
		lines = append(lines, fmt.Sprintf("%s evidence signed by %s: sbom %s, provenance %s, scan-verdict %s (%s)",
			p.Name, p.Attached.KeyID, e[evidence.CycloneDX], e[evidence.SLSAProvenance], e[evidence.ScanVerdict], state))
	}
	return lines
}

// errNoKey: the gate has no key to verify with.
var errNoKey = errors.New("the evidence gate needs --verify-key (cosign.pub) or --signing-key, or (keyless) --verify-identity and --verify-issuer")

// gate is the evidence gate of deploy, promote and verify-evidence: nil when off. escape says how
// the calling function goes on without it ("" when it cannot).
func (m *Wanderlust) gate(ctx context.Context, on bool, f evidenceFlags, escape string) (*gitops.Evidence, error) {
	if f.allowUnverified != "" {
		return &gitops.Evidence{AllowUnverified: f.allowUnverified}, nil
	}
	if !on {
		return nil, nil
	}
	if _, err := findings.ParseSeverity(f.failOn); err != nil {
		return nil, fmt.Errorf("--evidence-fail-on: %w", err)
	}
	k, err := m.identityGate(ctx)
	if err != nil {
		return nil, err
	}
	if k != nil {
		return &gitops.Evidence{Keyless: k, SourceRepo: m.SourceRepo, SourceCommit: f.sourceCommit, FailOn: f.failOn}, nil
	}
	pem, err := m.verifyKeyPEM(ctx)
	if errors.Is(err, errNoKey) && escape != "" {
		return nil, fmt.Errorf("%w; %s", err, escape)
	}
	if err != nil {
		return nil, err
	}
	e := &gitops.Evidence{VerifyKeyPEM: string(pem), SourceRepo: m.SourceRepo, SourceCommit: f.sourceCommit, FailOn: f.failOn}
	if _, err := e.Verifier(); err != nil {
		return nil, err
	}
	return e, nil
}

// verifyKeyPEM is --verify-key, or the public half of --signing-key.
func (m *Wanderlust) verifyKeyPEM(ctx context.Context) ([]byte, error) {
	if m.VerifyKey != nil {
		pem, err := m.VerifyKey.Contents(ctx)
		if err != nil {
			return nil, fmt.Errorf("--verify-key: %w", err)
		}
		return []byte(pem), nil
	}
	s, err := m.signer(ctx)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errNoKey
	}
	return s.PublicKeyPEM()
}

func (m *Wanderlust) verifyEvidence(ctx context.Context, image, sourceCommit, failOn string) (string, error) {
	g, err := m.gate(ctx, true, evidenceFlags{sourceCommit: sourceCommit, failOn: failOn}, "")
	if err != nil {
		return "", err
	}
	auth, err := m.registryAuth(ctx)
	if err != nil {
		return "", err
	}
	if _, err := evidence.ParseDigest(image); err != nil {
		imgs, rerr := registry.Resolve(ctx, []string{image}, auth)
		if rerr != nil {
			return "", rerr
		}
		image = imgs[0].Pinned()
	}
	if g.Keyless != nil {
		return m.verifyByIdentity(ctx, image, *g)
	}
	v, err := g.Verifier()
	if err != nil {
		return "", err
	}
	rep, err := evidence.Verify(ctx, image, v, g.Policy(), evidence.Remote{Auth: auth})
	if err != nil {
		return "", err
	}
	out := rep.Image + "\n" + rep.Summary()
	if err := rep.Err(); err != nil {
		return "", fmt.Errorf("%w\n\n%s\nFAIL", err, out)
	}
	return out + "\nPASS", nil
}

func (m *Wanderlust) sbom(ctx context.Context, component, image string) (*dagger.File, error) {
	var img *dagger.Container
	name := image
	if image != "" {
		img = dag.Container().From(image)
		host, _, _ := strings.Cut(image, "/")
		if m.RegistryPassword != nil && (registry.Auth{Host: strings.SplitN(m.Registry, "/", 2)[0]}).Owns(host) {
			// The login goes to its own registry only, never to whatever host --image names.
			img = dag.Container().WithRegistryAuth(host, m.RegistryUsername, m.RegistryPassword).From(image)
		}
	} else {
		if component != build.Backend && component != build.Frontend {
			return nil, fmt.Errorf("--component %q: want backend or frontend", component)
		}
		var err error
		if img, err = build.Image(ctx, dag, m.Source, component, build.Options{}); err != nil {
			return nil, err
		}
		name = "wanderlust-" + component + " (built from the source)"
	}
	raw, err := scan.ImageEvidence(dag, img, scan.Options{TrivyDBRepository: m.TrivyDBRepository}).File("/out/sbom.cdx.json").Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	named, err := evidence.NameSBOM([]byte(raw), name)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	return dag.Directory().WithNewFile("sbom.cdx.json", string(named)).File("sbom.cdx.json"), nil
}

// publishRunner publishes the GitOps program's image, with its evidence when a signing key is given.
func (m *Wanderlust) publishRunner(ctx context.Context, version, sourceCommit string, platforms []string) (string, error) {
	if err := need(m.Registry, "registry", "publish-runner pushes the program's image there"); err != nil {
		return "", err
	}
	if len(platforms) == 0 {
		return "", errors.New("--platform: give at least one, e.g. linux/amd64")
	}
	for _, p := range platforms {
		if os, arch, ok := strings.Cut(p, "/"); !ok || os != "linux" || arch == "" {
			return "", fmt.Errorf("--platform %q: want linux/<arch>, e.g. linux/arm64", p)
		}
	}
	ev, err := m.evidenceOptions(ctx, sourceCommit, false)
	if err != nil {
		return "", err
	}
	src := dag.CurrentModule().Source()
	var builds []*dagger.Container
	for _, p := range platforms {
		builds = append(builds, runner.Image(dag, src, dagger.Platform(p), nil, version))
	}
	images := map[string]*dagger.Container{runnerName: builds[0]}
	pub, err := publish.Images(ctx, images, publish.Options{Registry: m.Registry, Username: m.RegistryUsername, Password: m.RegistryPassword,
		Version: version, SourceCommit: sourceCommit, Variants: map[string][]*dagger.Container{runnerName: builds[1:]}})
	if err != nil {
		return "", err
	}
	lines := []string{pub[0].Name + " " + pub[0].Ref}
	if ev == nil {
		return strings.Join(append(lines, "no --signing-key: pushed without evidence"), "\n"), nil
	}
	// No base image: the program and the CA certificates of the Go image that built it.
	bi := evidence.BaseImage{Ref: runner.GoImage}
	if imgs, err := registry.Resolve(ctx, []string{runner.GoImage}, registry.Auth{}); err == nil {
		bi.Digest = imgs[0].Digest
	}
	ev.BaseImages = map[string][]evidence.BaseImage{runnerName: {bi}}
	// The SBOM and the verdict are of the first platform's image: the same program, built for another CPU.
	proven, err := publish.Prove(ctx, dag, images, pub, *ev)
	if err != nil {
		return "", fmt.Errorf("%w\n\npushed without evidence:\n%s", err, strings.Join(lines, "\n"))
	}
	return strings.Join(append(lines, evidenceLines(proven)...), "\n"), nil
}

// runnerName names the program's image: <registry>/wanderlust-gitops.
const runnerName = "gitops"
