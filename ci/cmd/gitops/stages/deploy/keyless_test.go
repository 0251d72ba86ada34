package deploy

import (
	"context"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/cmd/gitops/internal/sigstorestack"
	"wanderlust.dev/pipeline/ci/cmd/gitops/stages/keyless"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/registry"
)

// The gate by identity, as promote.yml runs it: images signed keyless by deploy.yml on main are
// deployed and promoted at their verified digests, the report naming the certificate's identity;
// images signed keyless by another workflow of the same repository (a pull request's) are refused,
// the error naming the image, the identity found and the one required, and nothing is pushed.
func TestPromoteByTheDeployWorkflowsIdentity(t *testing.T) {
	w := setup(t, "kls")
	s := sigstorestack.Start(t)
	tr, err := keyless.TrustedRoot(s.TrustedRoot, nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := func(workflowRef string) evidence.Attacher {
		sg, err := keyless.NewSigner(keyless.SignOptions{Services: keyless.Services{FulcioURL: s.FulcioURL, RekorURL: s.RekorURL, TSAURL: s.TSAURL},
			Token: keyless.TokenSource{Token: s.Token(t, sigstorestack.GitHubClaims(workflowRef))}, TrustedRoot: tr})
		if err != nil {
			t.Fatal(err)
		}
		return sg
	}
	deployYML := sigstorestack.Identity(sigstorestack.Workflow)
	checker, err := keyless.NewChecker(tr, keyless.Identity{Subject: deployYML, Issuer: s.Issuer})
	if err != nil {
		t.Fatal(err)
	}
	gate := &Evidence{Verifier: checker, Policy: evidence.Policy{SourceRepo: appRepo, FailOn: "HIGH"}}
	ctx := context.Background()
	devBump := bump.Options{Git: w.gitOpts("kls"), Env: "dev", SourceCommit: appCommit}

	ours := release{signer: signer(sigstorestack.Workflow), commit: appCommit}
	backend, frontend := w.publish(t, "wanderlust-backend", "1.0.0", ours), w.publish(t, "wanderlust-frontend", "1.0.0", ours)
	argo := w.argo(t, "kls-dev")
	if _, err := Run(ctx, Options{Images: []string{backend, frontend}, Bump: devBump, Argo: &argo, Evidence: gate}, nil); err != nil {
		t.Fatalf("deploy --require-evidence of images signed by deploy.yml: %v", err)
	}
	rep, err := Promote(ctx, PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("kls"), Argo: w.argo(t, ""), FromApp: "kls-dev", ToApp: "kls-staging", Evidence: gate})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	imgs, _ := registry.Resolve(ctx, []string{backend, frontend}, registry.Auth{})
	staging, _ := w.git.Show("kls", "main", "kubernetes/overlays/staging/kustomization.yaml")
	for _, i := range imgs {
		if !strings.Contains(staging, i.Digest) {
			t.Errorf("staging is not pinned to the verified digest %s:\n%s", i.Digest, staging)
		}
	}
	if text := rep.Text(); !strings.Contains(text, "signed by "+deployYML+" (issuer "+s.Issuer+")") {
		t.Errorf("the report does not name the signing identity:\n%s", text)
	}

	// A pull request's workflow signed these: same repository, same issuer, another identity.
	prWorkflow := "wanderlust-app/wanderlust/.github/workflows/pull-request.yml@refs/pull/7/merge"
	theirs := release{signer: signer(prWorkflow), commit: appCommit}
	backend, frontend = w.publish(t, "wanderlust-backend", "2.0.0", theirs), w.publish(t, "wanderlust-frontend", "2.0.0", theirs)
	argo = w.argo(t, "kls-dev")
	if _, err := Run(ctx, Options{Images: []string{backend, frontend}, Bump: devBump, Argo: &argo}, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := w.git.Head("kls", "main")
	_, err = Promote(ctx, PromoteOptions{From: "dev", To: "staging", Git: w.gitOpts("kls"), Argo: w.argo(t, ""), FromApp: "kls-dev", ToApp: "kls-staging", Evidence: gate})
	if err == nil {
		t.Fatal("promoted images signed by another workflow")
	}
	for _, want := range []string{"wanderlust-backend@sha256:", "wanderlust-frontend@sha256:", "signature:",
		"signed by " + sigstorestack.Identity(prWorkflow), "want " + deployYML + " issued by " + s.Issuer} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q:\n%v", want, err)
		}
	}
	if after, _ := w.git.Head("kls", "main"); after != before {
		t.Error("a refused promotion pushed")
	}
}
