// Wanderlust's CI + GitOps pipeline as a Dagger module: scan, build, publish, bump the manifests,
// sync Argo CD and notify, each stage a typed function that runs the same on a laptop and in CI.
//
// The constructor holds what every stage shares (source, registry, GitOps repository, Argo CD, SMTP):
//
//	dagger call --repo https://github.com/acme/gitops.git --git-token env:GITOPS_TOKEN \
//	  --argocd-server argocd.acme.dev:443 --argocd-token env:ARGOCD_AUTH_TOKEN \
//	  --registry ghcr.io/acme --registry-password env:REGISTRY_TOKEN \
//	  deploy --env dev --version 1.4.0
//
// This file is the table of contents: every function is a thin call into a package under stages/.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"wanderlust.dev/pipeline/ci/gitops"
	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/build"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/stages/scan"
)

// Wanderlust is the CI + GitOps pipeline of the Wanderlust travel blog (Vite/React frontend,
// Node/Express backend, MongoDB, Redis, on Kubernetes with Argo CD).
type Wanderlust struct {
	// +private
	Source *dagger.Directory
	// +private
	Registry string
	// +private
	RegistryUsername string
	// +private
	RegistryPassword *dagger.Secret
	// +private
	Repo string
	// +private
	Branch string
	// +private
	GitUser string
	// +private
	GitToken *dagger.Secret
	// +private
	ArgocdServer string
	// +private
	ArgocdToken *dagger.Secret
	// +private
	ArgocdPlainText bool
	// +private
	ArgocdInsecure bool
	// +private
	ArgocdGrpcWeb bool
	// +private
	AppNamespace string
	// +private
	ArgocdRepoURL string
	// +private
	SMTPHost string
	// +private
	SMTPPort int
	// +private
	SMTPTLS string
	// +private
	SMTPUsername string
	// +private
	SMTPPassword *dagger.Secret
	// +private
	MailFrom string
	// +private
	MailTo []string
	// +private
	WebhookURL *dagger.Secret
	// +private
	SigningKey *dagger.Secret
	// +private
	SigningPassword *dagger.Secret
	// +private
	VerifyKey *dagger.File
	// +private
	Keyless bool
	// +private
	OidcToken *dagger.Secret
	// +private
	OidcRequestURL *dagger.Secret
	// +private
	OidcRequestToken *dagger.Secret
	// +private
	FulcioURL string
	// +private
	RekorURL string
	// +private
	TsaURL string
	// +private
	TrustedRoot *dagger.File
	// +private
	VerifyIdentity string
	// +private
	VerifyIdentityRegexp string
	// +private
	VerifyIssuer string
	// +private
	VerifyIssuerRegexp string
	// +private
	SourceRepo string
	// +private
	TrivyDBRepository string
	// +private
	RunnerImage string
	// +private
	GoEnv []string
}

// New configures the pipeline: what every stage shares. Give only what the functions you call need
// (build and scan need the source; publish a registry; bump, sync, deploy and promote the GitOps
// repository; sync, deploy and promote Argo CD; mail an SMTP server).
func New(
	// Application source with backend/ and frontend/ (a path, or a git URL).
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
	// Repository prefix of the images, e.g. ghcr.io/wanderlust-app (lower-cased, as OCI repository
	// names must be: a mixed-case GitHub owner works as given).
	// +optional
	registry string,
	// Registry user.
	// +optional
	registryUsername string,
	// Registry password or token.
	// +optional
	registryPassword *dagger.Secret,
	// GitOps repository holding kubernetes/: https://…, ssh://…, git@host:path or file://… (no
	// credentials in the URL).
	// +optional
	repo string,
	// Branch of the GitOps repository.
	// +default="main"
	branch string,
	// HTTPS user for --git-token.
	// +default="x-access-token"
	gitUser string,
	// Token for the GitOps repository (sent as the HTTPS basic-auth password; never logged).
	// +optional
	gitToken *dagger.Secret,
	// Argo CD API server, host:port.
	// +optional
	argocdServer string,
	// Argo CD API token.
	// +optional
	argocdToken *dagger.Secret,
	// Talk to Argo CD without TLS.
	// +optional
	argocdPlainText bool,
	// Skip Argo CD's TLS verification.
	// +optional
	argocdInsecure bool,
	// Tunnel gRPC to Argo CD over HTTP/1 (through proxies without HTTP/2).
	// +optional
	argocdGrpcWeb bool,
	// Namespace of the Applications, when not Argo CD's own (apps in any namespace).
	// +optional
	appNamespace string,
	// The GitOps repository's URL as the Applications name it, when not the one pushed to (an
	// internal mirror; the sandbox's http://git:8080/wanderlust.git behind up's port 3000).
	// +optional
	argocdRepoUrl string,
	// SMTP server for the run report; without it no email is sent.
	// +optional
	smtpHost string,
	// SMTP port (default by TLS mode: 587, 465, 25).
	// +optional
	smtpPort int,
	// SMTP TLS: starttls, implicit or none.
	// +default="starttls"
	smtpTls string,
	// SMTP user.
	// +optional
	smtpUsername string,
	// SMTP password.
	// +optional
	smtpPassword *dagger.Secret,
	// Sender address of the report.
	// +optional
	mailFrom string,
	// Recipients of the report.
	// +optional
	mailTo []string,
	// Incoming-webhook URL (Slack-compatible) that gets each run's summary; a secret, as such URLs
	// embed a token.
	// +optional
	webhookUrl *dagger.Secret,
	// Private key that signs the published images and their evidence (SBOM, provenance, scan
	// verdict), cosign-compatibly: cosign's encrypted key (as cosign generate-key-pair writes it) or a PEM key.
	// +optional
	signingKey *dagger.Secret,
	// Password of --signing-key.
	// +optional
	signingPassword *dagger.Secret,
	// Public key (cosign.pub) that the evidence gate of deploy --require-evidence, promote and
	// verify-evidence checks signatures with; default: that of --signing-key.
	// +optional
	verifyKey *dagger.File,
	// Sign keyless instead of with --signing-key: an ephemeral key, a short-lived Fulcio certificate
	// naming this CI job's OIDC identity, each signature logged in Rekor v2 and timestamped; stored as
	// Sigstore bundles in OCI referrers (what cosign v3 verifies by default).
	// +optional
	keyless bool,
	// OIDC identity token for --keyless (audience sigstore).
	// +optional
	oidcToken *dagger.Secret,
	// GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL, with --oidc-request-token: the token is asked for
	// when signing (the job needs permissions: id-token: write).
	// +optional
	oidcRequestUrl *dagger.Secret,
	// GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	// +optional
	oidcRequestToken *dagger.Secret,
	// Fulcio of --keyless (default: https://fulcio.sigstore.dev).
	// +optional
	fulcioUrl string,
	// Rekor v2 log of --keyless (default: https://log2025-1.rekor.sigstore.dev).
	// +optional
	rekorUrl string,
	// Timestamp authority of --keyless (default: https://timestamp.sigstore.dev/api/v1/timestamp).
	// +optional
	tsaUrl string,
	// trusted_root.json of the Sigstore that --keyless signs with and the gate verifies against
	// (default: Sigstore's public root, fetched and verified over TUF).
	// +optional
	trustedRoot *dagger.File,
	// Certificate identity the evidence gate requires (keyless), e.g.
	// https://github.com/OWNER/REPO/.github/workflows/deploy.yml@refs/heads/main.
	// +optional
	verifyIdentity string,
	// Regular expression for the certificate identity, instead of --verify-identity.
	// +optional
	verifyIdentityRegexp string,
	// OIDC issuer the evidence gate requires (GitHub Actions: https://token.actions.githubusercontent.com).
	// +optional
	verifyIssuer string,
	// Regular expression for the issuer, instead of --verify-issuer.
	// +optional
	verifyIssuerRegexp string,
	// The application's repository URL, named in the provenance and required of it by the gate
	// (e.g. https://github.com/wanderlust-app/wanderlust).
	// +optional
	sourceRepo string,
	// Mirror of Trivy's vulnerability database (a registry you control) for every Trivy run — scan,
	// the images' SBOM and verdict in publish and deploy, sbom: behind a firewall, offline, or when
	// ghcr.io rate-limits CI.
	// +optional
	trivyDbRepository string,
	// Published image of the GitOps program that deploy, promote and sync run (everything that talks
	// to Argo CD), e.g. ghcr.io/wanderlust-app/wanderlust-gitops:v1.2.0 from this repository's release
	// workflow. Default: built from this module's source on the engine, once (recommended on
	// ephemeral CI runners: the build takes minutes on a cold engine, the pull seconds).
	// +optional
	runnerImage string,
	// Go settings for what the module compiles (the GitOps program, the sandbox's binaries), NAME=value:
	// GOPROXY, GONOSUMDB, GOPRIVATE, GOFLAGS, GONOPROXY or GOSUMDB — e.g. a team's module mirror.
	// +optional
	goEnv []string,
) *Wanderlust {
	return &Wanderlust{Source: source, Registry: strings.ToLower(registry), RegistryUsername: registryUsername, RegistryPassword: registryPassword,
		Repo: repo, Branch: branch, GitUser: gitUser, GitToken: gitToken,
		ArgocdServer: argocdServer, ArgocdToken: argocdToken, ArgocdPlainText: argocdPlainText, ArgocdInsecure: argocdInsecure,
		ArgocdGrpcWeb: argocdGrpcWeb, AppNamespace: appNamespace, ArgocdRepoURL: argocdRepoUrl,
		SMTPHost: smtpHost, SMTPPort: smtpPort, SMTPTLS: smtpTls, SMTPUsername: smtpUsername, SMTPPassword: smtpPassword,
		MailFrom: mailFrom, MailTo: mailTo, WebhookURL: webhookUrl,
		SigningKey: signingKey, SigningPassword: signingPassword, VerifyKey: verifyKey, SourceRepo: sourceRepo, TrivyDBRepository: trivyDbRepository,
		Keyless: keyless, OidcToken: oidcToken, OidcRequestURL: oidcRequestUrl, OidcRequestToken: oidcRequestToken,
		FulcioURL: fulcioUrl, RekorURL: rekorUrl, TsaURL: tsaUrl, TrustedRoot: trustedRoot,
		VerifyIdentity: verifyIdentity, VerifyIdentityRegexp: verifyIdentityRegexp, VerifyIssuer: verifyIssuer, VerifyIssuerRegexp: verifyIssuerRegexp,
		RunnerImage: runnerImage, GoEnv: goEnv}
}

// TestBackend returns the container in which the backend's tests ran (npm ci, npm test, with MongoDB
// and Redis services bound): `dagger call test-backend terminal` to debug it.
//
// +cache="never"
func (m *Wanderlust) TestBackend() *dagger.Container {
	return build.Test(dag, m.Source, build.Backend, build.Options{})
}

// TestFrontend returns the container in which the frontend's tests ran.
//
// +cache="never"
func (m *Wanderlust) TestFrontend() *dagger.Container {
	return build.Test(dag, m.Source, build.Frontend, build.Options{})
}

// BuildBackend runs the backend's tests, then builds its image (its Dockerfile, or a Node recipe).
//
// +cache="never"
func (m *Wanderlust) BuildBackend(
	ctx context.Context,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (*dagger.Container, error) {
	return build.One(ctx, dag, m.Source, build.Backend, build.Options{SkipTests: skipTests})
}

// BuildFrontend runs the frontend's tests, then builds its image (its Dockerfile, or Vite + nginx).
//
// +cache="never"
func (m *Wanderlust) BuildFrontend(
	ctx context.Context,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (*dagger.Container, error) {
	return build.One(ctx, dag, m.Source, build.Frontend, build.Options{SkipTests: skipTests})
}

// Images are the two built images.
type Images struct {
	// The backend image.
	Backend *dagger.Container
	// The frontend image.
	Frontend *dagger.Container
}

// Build tests and builds the backend and frontend concurrently.
//
// +cache="never"
func (m *Wanderlust) Build(
	ctx context.Context,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (*Images, error) {
	res, err := build.Both(ctx, dag, m.Source, build.Options{SkipTests: skipTests})
	if err != nil {
		return nil, err
	}
	return &Images{Backend: res.Backend, Frontend: res.Frontend}, nil
}

// ScanReport is the outcome of Scan: the reports, whether the gate passed, and why not.
type ScanReport struct {
	// Raw reports of each scanner, merged.sarif (for code scanning), summary.md, verdict.json.
	Reports *dagger.Directory
	// Whether the gate passed.
	Passed bool
	// Markdown summary (for $GITHUB_STEP_SUMMARY).
	Summary string
	// Why the gate failed ("" when it passed).
	Reason string
}

// Gate fails when the scan's gate failed, naming the findings that broke it: chain it after
// exporting the reports to make CI fail (`dagger call scan … gate`).
func (r *ScanReport) Gate() (string, error) {
	if !r.Passed {
		return "", errors.New(r.Reason)
	}
	return "scan gate passed", nil
}

// ScanGate fails when an exported scan failed its gate, with the reason: it reads the verdict.json
// that `scan … reports export` wrote, so that CI exports every report and gates on one scan.
func (m *Wanderlust) ScanGate(
	ctx context.Context,
	// The verdict.json of the exported scan reports.
	verdict *dagger.File,
) (string, error) {
	b, err := verdict.Contents(ctx)
	if err != nil {
		return "", errors.Join(errors.New("scan-gate: cannot read --verdict"), err)
	}
	return scanGate([]byte(b))
}

// Scan runs Trivy (source and, with --images, the built images), OWASP Dependency-Check (with an NVD
// API key) and SonarQube (with a server), gates on the findings and returns every report. The
// reports are returned even when the gate fails: export them, then call gate.
//
// +cache="never"
func (m *Wanderlust) Scan(
	ctx context.Context,
	// Also build both images and scan them.
	// +optional
	images bool,
	// Fail on findings at or above this severity: LOW, MEDIUM, HIGH, CRITICAL (or NONE).
	// +default="HIGH"
	failOn string,
	// Fail on Dependency-Check findings with a CVSS score at or above this (0 disables).
	// +default=7
	maxCvss float64,
	// Finding IDs (CVE-…, DS-…, secret rule IDs) that never fail the gate.
	// +optional
	allow []string,
	// NVD API key: enables OWASP Dependency-Check (skipped with a notice without it).
	// +optional
	nvdApiKey *dagger.Secret,
	// SonarQube server URL: enables the SonarQube analysis and quality gate.
	// +optional
	sonarUrl string,
	// SonarQube token.
	// +optional
	sonarToken *dagger.Secret,
	// SonarQube project key.
	// +default="wanderlust"
	sonarProjectKey string,
) (*ScanReport, error) {
	res, err := m.scan(ctx, images, failOn, maxCvss, allow, scan.Options{NVDAPIKey: nvdApiKey, SonarURL: sonarUrl,
		SonarToken: sonarToken, SonarProjectKey: sonarProjectKey, TrivyDBRepository: m.TrivyDBRepository})
	if err != nil {
		return nil, err
	}
	return &ScanReport{Reports: res.Reports, Passed: res.Verdict.Pass, Summary: res.Markdown, Reason: res.Verdict.Reason()}, nil
}

// Publish tests and builds both images and pushes them as <registry>/wanderlust-{backend,frontend}
// under the version and the source commit's short SHA. Prints one digest-pinned reference per image.
// With --signing-key (constructor), each image also gets its evidence, stored next to it in cosign's
// format: a CycloneDX SBOM (Trivy), SLSA v1 provenance (--source-repo, the full --source-commit,
// the base images' digests, the flags) and the scan verdict, each a signed attestation, and a
// signature of the digest — `cosign verify --key cosign.pub` and `cosign verify-attestation` accept
// them.
//
// +cache="never"
func (m *Wanderlust) Publish(
	ctx context.Context,
	// Release version, the image tag (e.g. 1.4.0).
	version string,
	// Application commit SHA: also tags the images with its first 12 digits.
	// +optional
	sourceCommit string,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (string, error) {
	return m.publishAndPrint(ctx, version, sourceCommit, skipTests)
}

// Sbom returns the CycloneDX SBOM (JSON, made by the pinned Trivy) of an image in a registry, or
// without --image of the component's image built from the source.
//
// +cache="never"
func (m *Wanderlust) Sbom(
	ctx context.Context,
	// Component to build when no --image is given: backend or frontend.
	// +default="backend"
	component string,
	// Image reference to read instead of building (the constructor's registry login is used for
	// the --registry host only).
	// +optional
	image string,
) (*dagger.File, error) {
	return m.sbom(ctx, component, image)
}

// VerifyEvidence checks what proves an image, for its exact digest: a signature valid for
// --verify-key (or the public half of --signing-key), a CycloneDX SBOM, SLSA provenance from
// --source-repo (and --source-commit when given), and a scan verdict that passes --fail-on. Prints
// what was found, piece by piece; fails, naming the missing or invalid pieces, unless all pass.
//
// +cache="never"
func (m *Wanderlust) VerifyEvidence(
	ctx context.Context,
	// Image to check, repo@sha256:… (a tag is resolved to its digest first).
	image string,
	// Application commit the provenance must name.
	// +optional
	sourceCommit string,
	// The target's threshold: no finding off the allow list at or above this severity.
	// +default="HIGH"
	failOn string,
) (string, error) {
	return m.verifyEvidence(ctx, image, sourceCommit, failOn)
}

// VerifyImages checks that every image tag exists in its registry and prints it digest-pinned
// (repo:tag@sha256:…), so that nothing unpushed is ever deployed and bump can pin digests.
//
// +cache="never"
func (m *Wanderlust) VerifyImages(
	ctx context.Context,
	// Image references to check, e.g. ghcr.io/wanderlust-app/wanderlust-backend:1.4.0.
	image []string,
) (string, error) {
	auth, err := m.registryAuth(ctx)
	if err != nil {
		return "", err
	}
	imgs, err := registry.Resolve(ctx, image, auth)
	if err != nil {
		return "", err
	}
	var lines []string
	for _, i := range imgs {
		lines = append(lines, i.Pinned())
	}
	return strings.Join(lines, "\n"), nil
}

// Bump sets image tags and/or digests in an environment's manifests (a kustomization's images:, or
// plain Deployments) and commits and pushes the change to the GitOps repository (--repo).
//
// Only the changed values are rewritten; comments and formatting stay. No commit is made when every
// image already has its value. If another run pushed first, the edit is re-applied on the new head
// (never force-pushed); if that run changed the same image, the bump fails with a conflict.
//
// Prints the pushed commit SHA, or "unchanged", or with --dry-run the diff that would be pushed.
//
// +cache="never"
func (m *Wanderlust) Bump(
	ctx context.Context,
	// Image updates: name=tag, name=sha256:<hex> or name=tag@sha256:<hex>; name is the image
	// repository or its last path element (e.g. wanderlust-backend=v1.2.3). Repeat or comma-separate.
	image []string,
	// Environment: edits kubernetes/overlays/<env>.
	// +optional
	env string,
	// Directory or file to edit instead of an environment's overlay (e.g. kubernetes for plain Deployments).
	// +optional
	path string,
	// SSH private key, for ssh:// and git@host:path repositories.
	// +optional
	sshKey *dagger.Secret,
	// known_hosts lines that pin the SSH server's key (required with --ssh-key).
	// +optional
	knownHosts string,
	// Commit author name.
	// +default="Wanderlust CI"
	authorName string,
	// Commit author email.
	// +default="ci@wanderlust.invalid"
	authorEmail string,
	// Commit message template (Go text/template over .Target, .Path, .SourceCommit and .Changes with
	// .Image .File .From .To); the default names the environment and every change.
	// +optional
	message string,
	// Application commit that produced the images; added as a Source-Commit: trailer.
	// +optional
	sourceCommit string,
	// Compute the commit and print its diff; push nothing.
	// +optional
	dryRun bool,
	// How many times to push when other runs keep moving the branch (one lands per round: N writers
	// racing need up to N).
	// +default=60
	maxAttempts int,
) (string, error) {
	return m.bump(ctx, bumpFlags{images: image, env: env, path: path, sshKey: sshKey, knownHosts: knownHosts,
		authorName: authorName, authorEmail: authorEmail, message: message, sourceCommit: sourceCommit, dryRun: dryRun, maxPushes: maxAttempts})
}

// Sync checks the Argo CD application (server, token, RBAC, that it tracks --repo and --branch, sync
// windows), hard-refreshes it, syncs the revision (or, with auto-sync, waits for the controller) and
// waits until a revision holding that commit's image values is Synced and Healthy, as evaluated after
// the sync. With --rollback, a rollout that fails because of the revision has its image entries
// restored in git (a new commit), which is waited for too; the call still fails, reporting both. A
// newer commit that replaced the values ends the wait as "superseded".
//
// +cache="never"
func (m *Wanderlust) Sync(
	ctx context.Context,
	// Application name.
	app string,
	// Commit SHA to deploy (the one bump pushed).
	revision string,
	// Seconds to wait for Synced and Healthy. Default: as long as Kubernetes waits for the rollout —
	// the largest progressDeadlineSeconds of the workloads the change touches (600 when unset), plus
	// the degraded grace and a minute for the sync; 300 when it touches no workload.
	// +optional
	timeout int,
	// Seconds Degraded health may last before the rollout counts as failed.
	// +default=30
	degradedGrace int,
	// Restore the revision's image entries when the rollout fails because of them (needs --repo).
	// +optional
	rollback bool,
	// Identifies this run in the sync operation's info.
	// +optional
	runId string,
	// Sync the revision even when the application already runs a newer commit that contains it (a
	// deliberate return to an older tree); without it such a sync is refused, and a manual sync asks
	// for the branch head when the head still holds the revision's values.
	// +optional
	allowOlder bool,
	// URL that must answer once the application is Healthy (post-deploy verification); repeat for several.
	// +optional
	verifyUrl []string,
	// Expected status of --verify-url: 2xx, a code, or a list (200,204).
	// +default="2xx"
	verifyStatus string,
	// Regular expression the body of --verify-url must match.
	// +optional
	verifyBody string,
	// Slowest acceptable response of --verify-url (e.g. 500ms).
	// +optional
	verifyMaxLatency string,
	// How long --verify-url is checked after Healthy (soak).
	// +default="30s"
	verifyFor string,
	// Time between checks of --verify-url.
	// +default="2s"
	verifyInterval string,
	// Skip TLS verification of --verify-url (for tests only).
	// +optional
	verifyInsecure bool,
) (string, error) {
	return m.sync(ctx, app, revision, timeout, degradedGrace, rollback, allowOlder, runId,
		probe.Flags{URLs: verifyUrl, Status: verifyStatus, Body: verifyBody, MaxLatency: verifyMaxLatency, For: verifyFor, Interval: verifyInterval, Insecure: verifyInsecure})
}

// Deploy runs the whole pipeline: check everything (inputs, GitOps repository, Argo CD: token, RBAC,
// that the app tracks the repository and branch, sync windows) → scan → build (frontend ∥ backend)
// → publish → verify the tags and resolve digests → bump the environment's manifests (tags, or
// digests with --pin-digest) → commit and push → wait until Argo CD runs exactly those values,
// Synced and Healthy → roll back our image entries when the rollout fails because of them → email
// the run report. Given --backend-tag and --frontend-tag, the container stages are skipped and those
// images deployed. Prints the run report (Markdown); a failed deployment fails the call with the
// report in the error. "already deployed" and "superseded" (a newer commit replaced our values) are
// not failures.
//
// +cache="never"
func (m *Wanderlust) Deploy(
	ctx context.Context,
	// Environment: kubernetes/overlays/<env> and, by default, the Argo CD app wanderlust-<env>.
	env string,
	// Release version (the image tag when building).
	// +optional
	version string,
	// Deploy this backend tag (skips scan, build and publish, with --frontend-tag).
	// +optional
	backendTag string,
	// Deploy this frontend tag.
	// +optional
	frontendTag string,
	// Application commit SHA (image tag, Source-Commit trailer).
	// +optional
	sourceCommit string,
	// When the application commit was made (RFC 3339), for the lead time.
	// +optional
	sourceCommitTime string,
	// Pin image digests in the manifests.
	// +optional
	pinDigest bool,
	// Argo CD application (default wanderlust-<env>).
	// +optional
	app string,
	// Push only: no sync, no wait, no verdict, no rollback. Without it deploy needs --argocd-server
	// (an empty one is refused, never taken for "skip the sync").
	// +optional
	noSync bool,
	// Restore our image entries when the rollout fails because of them.
	// +default=true
	rollback bool,
	// Seconds to wait for Synced and Healthy. Default: as long as Kubernetes waits for the rollout —
	// the largest progressDeadlineSeconds of the workloads the change touches (600 when unset), plus
	// the degraded grace and a minute for the sync; 300 when it touches no workload.
	// +optional
	timeout int,
	// Build, compute the manifest change and check Argo CD; push, sync and mail nothing. Prints what
	// would be built, pushed, changed and synced.
	// +optional
	dryRun bool,
	// Skip the security scan.
	// +optional
	skipScan bool,
	// NVD API key (OWASP Dependency-Check).
	// +optional
	nvdApiKey *dagger.Secret,
	// Mark the bump commit "[skip ci]", so that CI systems do not run again on it (when the GitOps
	// repository is the application's own).
	// +optional
	skipCi bool,
	// URL that must answer once the application is Healthy (post-deploy verification); repeat for several.
	// +optional
	verifyUrl []string,
	// Expected status of --verify-url: 2xx, a code, or a list (200,204).
	// +default="2xx"
	verifyStatus string,
	// Regular expression the body of --verify-url must match.
	// +optional
	verifyBody string,
	// Slowest acceptable response of --verify-url (e.g. 500ms).
	// +optional
	verifyMaxLatency string,
	// How long --verify-url is checked after Healthy (soak).
	// +default="30s"
	verifyFor string,
	// Time between checks of --verify-url.
	// +default="2s"
	verifyInterval string,
	// Skip TLS verification of --verify-url (for tests only).
	// +optional
	verifyInsecure bool,
	// How the pauses of Argo Rollouts are passed (overlays that use kubernetes/components, prod's
	// canary): auto runs the --verify-* checks at each pause (against --verify-canary-url when given)
	// and resumes, or aborts and restores git; manual stops at the first pause, exits 0 with the
	// result paused, and leaves promote-canary or abort-canary to a human.
	// +default="auto"
	canarySteps string,
	// URL of the release under test at each pause (the *-canary or *-preview Service), checked with
	// the --verify-* settings instead of --verify-url; repeat for several.
	// +optional
	verifyCanaryUrl []string,
	// Format of the printed run report: markdown or json.
	// +default="markdown"
	reportFormat string,
	// Verify each image's evidence (signature, SBOM, provenance, scan verdict) for its exact digest
	// before writing to git, and deploy that digest; refuse, pushing nothing, if a piece is missing
	// or invalid.
	// +optional
	requireEvidence bool,
	// With --require-evidence: the environment's threshold for the scan verdict.
	// +default="HIGH"
	evidenceFailOn string,
	// Print the report and exit 0 whatever the result, so that CI can keep the report of a failed
	// run (a failed call prints nothing on stdout); then gate on it: report --file … gate.
	// +optional
	exitZero bool,
) (string, error) {
	return m.deploy(ctx, deployFlags{exitZero: exitZero, requireEvidence: requireEvidence, evidenceFailOn: evidenceFailOn, env: env, version: version, backendTag: backendTag, frontendTag: frontendTag,
		sourceCommit: sourceCommit, sourceCommitTime: sourceCommitTime, pinDigest: pinDigest, app: app, noSync: noSync, rollback: rollback,
		timeout: timeout, dryRun: dryRun, skipScan: skipScan, nvd: nvdApiKey, skipCI: skipCi, reportFormat: reportFormat,
		canary: gitops.Canary{CanarySteps: canarySteps, VerifyCanaryURLs: verifyCanaryUrl},
		verify: probe.Flags{URLs: verifyUrl, Status: verifyStatus, Body: verifyBody, MaxLatency: verifyMaxLatency, For: verifyFor, Interval: verifyInterval, Insecure: verifyInsecure}})
}

// Promote copies the exact images that run in one environment (digests where pinned) into the next
// one's overlay, commits, pushes, syncs the target's Argo CD app and waits, with the same preflight,
// verdict, rollback, report and email rules as deploy. It refuses to promote what is not Synced and
// Healthy, and — unless --allow-unverified "reason" — what is not proven: each image's signature,
// SBOM, provenance and scan verdict are verified for its exact digest (see verify-evidence), which
// the target is then pinned to.
//
// +cache="never"
func (m *Wanderlust) Promote(
	ctx context.Context,
	// Source environment, e.g. dev.
	from string,
	// Target environment, e.g. staging.
	to string,
	// Argo CD application of the source environment (default wanderlust-<from>).
	// +optional
	fromApp string,
	// Argo CD application of the target environment (default wanderlust-<to>).
	// +optional
	toApp string,
	// Restore the target's image entries when the rollout fails because of them.
	// +default=true
	rollback bool,
	// Seconds to wait for Synced and Healthy. Default: as long as Kubernetes waits for the rollout —
	// the largest progressDeadlineSeconds of the workloads the change touches (600 when unset), plus
	// the degraded grace and a minute for the sync; 300 when it touches no workload.
	// +optional
	timeout int,
	// URL that must answer once the application is Healthy (post-deploy verification); repeat for several.
	// +optional
	verifyUrl []string,
	// Expected status of --verify-url: 2xx, a code, or a list (200,204).
	// +default="2xx"
	verifyStatus string,
	// Regular expression the body of --verify-url must match.
	// +optional
	verifyBody string,
	// Slowest acceptable response of --verify-url (e.g. 500ms).
	// +optional
	verifyMaxLatency string,
	// How long --verify-url is checked after Healthy (soak).
	// +default="30s"
	verifyFor string,
	// Time between checks of --verify-url.
	// +default="2s"
	verifyInterval string,
	// Skip TLS verification of --verify-url (for tests only).
	// +optional
	verifyInsecure bool,
	// How the pauses of Argo Rollouts are passed (overlays that use kubernetes/components, prod's
	// canary): auto runs the --verify-* checks at each pause (against --verify-canary-url when given)
	// and resumes, or aborts and restores git; manual stops at the first pause, exits 0 with the
	// result paused, and leaves promote-canary or abort-canary to a human.
	// +default="auto"
	canarySteps string,
	// URL of the release under test at each pause (the *-canary or *-preview Service), checked with
	// the --verify-* settings instead of --verify-url; repeat for several.
	// +optional
	verifyCanaryUrl []string,
	// Format of the printed run report: markdown or json.
	// +default="markdown"
	reportFormat string,
	// Promote without checking the images' evidence; the reason is recorded in the report.
	// +optional
	allowUnverified string,
	// Application commit the images' provenance must name.
	// +optional
	sourceCommit string,
	// The target environment's threshold for the scan verdict.
	// +default="HIGH"
	evidenceFailOn string,
	// Print the report and exit 0 whatever the result (see deploy).
	// +optional
	exitZero bool,
) (string, error) {
	return m.promote(ctx, from, to, fromApp, toApp, rollback, timeout, reportFormat, exitZero, evidenceFlags{allowUnverified: allowUnverified, sourceCommit: sourceCommit, failOn: evidenceFailOn},
		probe.Flags{URLs: verifyUrl, Status: verifyStatus, Body: verifyBody, MaxLatency: verifyMaxLatency, For: verifyFor, Interval: verifyInterval, Insecure: verifyInsecure},
		gitops.Canary{CanarySteps: canarySteps, VerifyCanaryURLs: verifyCanaryUrl})
}

// PromoteCanary continues a canary (or a blue-green preview) that deploy --canary-steps manual left
// paused in an environment: the --verify-* checks run at each remaining pause (against
// --verify-canary-url when given) and the Rollouts are resumed until fully promoted, or aborted and
// our image entries restored in git when a check fails. Refuses, changing nothing, when nothing is
// paused. Prints the run report.
//
// +cache="never"
func (m *Wanderlust) PromoteCanary(
	ctx context.Context,
	// Environment: kubernetes/overlays/<env> and, by default, the Argo CD app wanderlust-<env>.
	env string,
	// Argo CD application (default wanderlust-<env>).
	// +optional
	app string,
	// Seconds to wait for the Rollouts to be fully promoted and Healthy (default as deploy's).
	// +optional
	timeout int,
	// URL that must answer at each pause; repeat for several.
	// +optional
	verifyUrl []string,
	// URL of the release under test (the *-canary or *-preview Service), checked instead of
	// --verify-url at each pause; repeat for several.
	// +optional
	verifyCanaryUrl []string,
	// Expected status of the checks: 2xx, a code, or a list (200,204).
	// +default="2xx"
	verifyStatus string,
	// How long the checks run at each pause.
	// +default="30s"
	verifyFor string,
	// Time between checks.
	// +default="2s"
	verifyInterval string,
	// Format of the printed run report: markdown or json.
	// +default="markdown"
	reportFormat string,
	// Print the report and exit 0 whatever the result (see deploy).
	// +optional
	exitZero bool,
) (string, error) {
	return m.continueCanary(ctx, env, app, timeout, false, reportFormat, exitZero,
		probe.Flags{URLs: verifyUrl, Status: verifyStatus, For: verifyFor, Interval: verifyInterval}, gitops.Canary{VerifyCanaryURLs: verifyCanaryUrl})
}

// AbortCanary undoes a canary (or a blue-green preview) that deploy --canary-steps manual left paused
// in an environment: it aborts the Rollouts through Argo CD, restores our image entries in git by
// field, and waits until the previous version is Healthy again. Refuses, changing nothing, when
// nothing is paused. Prints the run report (a change failure caught before full exposure).
//
// +cache="never"
func (m *Wanderlust) AbortCanary(
	ctx context.Context,
	// Environment: kubernetes/overlays/<env> and, by default, the Argo CD app wanderlust-<env>.
	env string,
	// Argo CD application (default wanderlust-<env>).
	// +optional
	app string,
	// Seconds to wait for the previous version to be Healthy (default as deploy's).
	// +optional
	timeout int,
	// Format of the printed run report: markdown or json.
	// +default="markdown"
	reportFormat string,
) (string, error) {
	return m.continueCanary(ctx, env, app, timeout, true, reportFormat, false, probe.Flags{}, gitops.Canary{})
}

// PublishRunner builds the GitOps program's image (what deploy, promote and sync run; see
// --runner-image) for each platform from this module's source, pushes it as
// <registry>/wanderlust-gitops:<version> (and the source commit's short SHA) as one multi-platform
// tag, and — with --signing-key — its SBOM, provenance and scan verdict as signed attestations and a
// signature of its digest, as publish does for the application. Prints the digest-pinned reference
// and the evidence: what --runner-image takes.
//
// +cache="never"
func (m *Wanderlust) PublishRunner(
	ctx context.Context,
	// Release version: the image tag (e.g. v1.2.0).
	version string,
	// Commit of this repository the program is built from (provenance, and a second tag).
	// +optional
	sourceCommit string,
	// Platforms to build, os/arch.
	// +default=["linux/amd64", "linux/arm64"]
	platform []string,
) (string, error) {
	return m.publishRunner(ctx, version, sourceCommit, platform)
}

// RunReport is a deploy's or promote's run report read back from the JSON that --report-format json
// --exit-zero printed: CI keeps the report of a failed run, shows it, then gates on it.
type RunReport struct {
	// The report in Markdown (for $GITHUB_STEP_SUMMARY).
	Markdown string
	// The result: succeeded, failed, failed (not ours), superseded, already deployed or dry run.
	Result string
	// Why, when the result is not succeeded.
	Reason string
	// report.md and report.json, to export: `… report --file deploy.json files export --path
	// deploy-report` (a CI job summary appends deploy-report/report.md).
	Files *dagger.Directory
}

// Gate fails when the run failed, with its reason (superseded, already deployed and dry run are
// not failures, as for deploy itself).
func (r *RunReport) Gate() (string, error) {
	if report.Failure(r.Result) {
		return "", fmt.Errorf("%s: %s", r.Result, r.Reason)
	}
	return "run " + r.Result, nil
}

// Report reads a run report that deploy or promote printed with --report-format json (and
// --exit-zero, so that a failed run's report is kept): `… report --file deploy.json markdown` for a
// job summary, `… report --file deploy.json gate` to fail the job when the run failed.
func (m *Wanderlust) Report(
	ctx context.Context,
	// The report, JSON.
	file *dagger.File,
) (*RunReport, error) {
	body, err := file.Contents(ctx)
	if err != nil {
		return nil, err
	}
	r, err := readRunReport(body)
	if err != nil {
		return nil, err
	}
	r.Files = dag.Directory().WithNewFile("report.md", r.Markdown).WithNewFile("report.json", body)
	return r, nil
}

// DeliveryMetrics are the delivery metrics of a window: a report and a chart per environment.
type DeliveryMetrics struct {
	// The metrics in the requested format (markdown, json or csv).
	Report string
	// One SVG chart per environment (<env>.svg): deployments per week, stacked success/failure, with
	// the median lead time as a line.
	Charts *dagger.Directory
	// The report (metrics.md, .json or .csv) and the charts, to export: `… metrics files export
	// --path metrics` (a CI job summary appends metrics/metrics.md).
	Files *dagger.Directory
}

// Metrics computes delivery metrics (DORA) per environment from the GitOps repository (--repo) alone —
// the deployment commits' trailers and the notes on refs/notes/deployments, no checkout, no blobs:
// deployment frequency, lead time for changes (median, p90), change failure rate, time to restore,
// pipeline success rate, each with its DORA performance band. `… metrics report`, or
// `… metrics charts export --path charts`.
//
// +cache="never"
func (m *Wanderlust) Metrics(
	ctx context.Context,
	// Environment (default: each that deployed in the window).
	// +optional
	env string,
	// Start of the window: 30d, 12h, 2w or an RFC 3339 time.
	// +default="30d"
	since string,
	// End of the window (RFC 3339; default now).
	// +optional
	until string,
	// Format of the report: markdown, json or csv.
	// +default="markdown"
	format string,
) (*DeliveryMetrics, error) {
	return m.metrics(ctx, env, since, until, format)
}

// Notify emails with the configured SMTP settings: a run report (the JSON that deploy prints with
// --report-format json), or without one a test message — "does my mail setup work?".
//
// +cache="never"
func (m *Wanderlust) Notify(
	ctx context.Context,
	// A run report in JSON; without it a test message is sent.
	// +optional
	report *dagger.File,
) (string, error) {
	return m.notify(ctx, report)
}

// Sandbox is the main job with no accounts, on the projects' own images: kwok's cluster (Kubernetes
// 1.34.8; pods are simulated — they never run the images — and an image whose name contains
// "never-ready" never becomes Ready, to try a failing rollout), Argo CD v2.14.21's image, redis,
// Mailpit and the CNCF registry; the git remote, seeded with kubernetes/, is the GitOps program.
// `dagger call sandbox deploy` builds, tests and deploys the sample app to it; `dagger call sandbox
// up --deploy up` does so and keeps it running on the host. The first call pulls the images and
// builds the GitOps program (the constructor's --runner-image pulls a published one instead).
//
// +cache="never"
func (m *Wanderlust) Sandbox(
	// The application to build and deploy (backend/ and frontend/).
	// +defaultPath="/testdata/sample-app"
	// +ignore=["**/node_modules", "**/dist"]
	app *dagger.Directory,
	// This project: its kubernetes/ (the manifests and the Argo CD applications).
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git", "testdata"]
	project *dagger.Directory,
	// Password of the sandbox's Argo CD admin and git remote (default: random, printed by up). Plain,
	// not a secret: the sandbox is local and throw-away, and a secret could never be printed.
	// +optional
	password string,
) *Sandbox {
	return newSandbox(app, project, password, m.RunnerImage, m.GoEnv)
}

// Sandbox is the pipeline's world without accounts (see Wanderlust.Sandbox).
type Sandbox struct {
	// +private
	App *dagger.Directory
	// +private
	Repo *dagger.Directory
	// +private
	Login string
	// +private
	RunnerImage string
	// +private
	GoEnv []string
}

// Deploy builds and tests the app, publishes both images to the sandbox's registry, bumps the
// overlay in its git remote, syncs its Argo CD and waits until Healthy (rolling back a failed
// rollout), mails the report to its Mailpit, and prints the report and where to look.
//
// +cache="never"
func (s *Sandbox) Deploy(
	ctx context.Context,
	// Environment: kubernetes/overlays/<env>, Argo CD app wanderlust-<env>.
	// +default="dev"
	env string,
	// Image tag (one containing "never-ready" makes a rollout that fails and is rolled back).
	// +default="2.0.0"
	version string,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (string, error) {
	return withWhere(s.deploy(ctx, env, version, skipTests))
}

// Promote promotes what runs in one environment of the sandbox to the next (the sandbox's images
// are unsigned: the evidence gate is skipped, and the report says so).
//
// +cache="never"
func (s *Sandbox) Promote(
	ctx context.Context,
	// Source environment.
	// +default="dev"
	from string,
	// Target environment.
	// +default="staging"
	to string,
) (string, error) {
	return withWhere(s.promote(ctx, from, to))
}

// Up is every sandbox service behind one: `dagger call sandbox up up` forwards to the host the Argo
// CD UI and API (localhost:8080, user admin; the login is printed), the git remote (3000), the
// registry (5000), Mailpit's web UI (8025) and SMTP (1025). With --deploy it first deploys
// the app to dev (and with --promote-to promotes it) in the same session, so that what you open is
// what was deployed: `dagger call sandbox up --deploy --promote-to staging up`.
//
// +cache="never"
func (s *Sandbox) Up(
	ctx context.Context,
	// Deploy the app to dev first, in this sandbox (the report goes to the call's log).
	// +optional
	deploy bool,
	// Image tag of that deploy.
	// +default="2.0.0"
	version string,
	// Then promote dev to this environment (e.g. staging).
	// +optional
	promoteTo string,
) (*dagger.Service, error) {
	return s.up(ctx, deploy, version, promoteTo)
}

// Registry is the sandbox's OCI registry service (port 5000, plain HTTP).
func (s *Sandbox) Registry() *dagger.Service { return s.services().Registry }

// Git is the sandbox's git remote (port 8080, /wanderlust.git, user sandbox).
func (s *Sandbox) Git() *dagger.Service { return s.services().Git }

// Argocd is the sandbox's Argo CD API server (API and UI on 8080, user admin), which starts the rest
// of Argo CD, the cluster and its bootstrap.
func (s *Sandbox) Argocd() *dagger.Service { return s.services().ArgoCD }

// Mail is the sandbox's Mailpit (SMTP 1025, web UI and API 8025).
func (s *Sandbox) Mail() *dagger.Service { return s.services().Mail }
