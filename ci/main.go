// Wanderlust's CI + GitOps pipeline as a Dagger module: scan, build, publish, bump the manifests,
// sync Argo CD and notify, each stage a typed function that runs the same on a laptop and in CI.
//
// This file is the table of contents: every function is a thin call into a package under stages/.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/argocd"
	"wanderlust.dev/pipeline/ci/stages/build"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/deploy"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/publish"
	"wanderlust.dev/pipeline/ci/stages/registry"
	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/stages/scan"
)

// Wanderlust is the pipeline of the Wanderlust travel blog (Vite/React frontend, Node/Express backend).
type Wanderlust struct{}

// TestBackend returns the container in which the backend's tests ran (npm ci, npm test, with MongoDB
// and Redis services bound): `dagger call test-backend --source . terminal` to debug it.
//
// +cache="never"
func (m *Wanderlust) TestBackend(
	// Application source with backend/ and frontend/ (a path, or a git URL).
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
) *dagger.Container {
	return build.Test(dag, source, build.Backend, build.Options{})
}

// TestFrontend returns the container in which the frontend's tests ran.
//
// +cache="never"
func (m *Wanderlust) TestFrontend(
	// Application source with backend/ and frontend/.
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
) *dagger.Container {
	return build.Test(dag, source, build.Frontend, build.Options{})
}

// BuildBackend runs the backend's tests, then builds its image (its Dockerfile, or a Node recipe).
//
// +cache="never"
func (m *Wanderlust) BuildBackend(
	ctx context.Context,
	// Application source with backend/ and frontend/.
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (*dagger.Container, error) {
	return build.One(ctx, dag, source, build.Backend, build.Options{SkipTests: skipTests})
}

// BuildFrontend runs the frontend's tests, then builds its image (its Dockerfile, or Vite + nginx).
//
// +cache="never"
func (m *Wanderlust) BuildFrontend(
	ctx context.Context,
	// Application source with backend/ and frontend/.
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (*dagger.Container, error) {
	return build.One(ctx, dag, source, build.Frontend, build.Options{SkipTests: skipTests})
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
	// Application source with backend/ and frontend/.
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (*Images, error) {
	res, err := build.Both(ctx, dag, source, build.Options{SkipTests: skipTests})
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

// Scan runs Trivy (source and, with --images, the built images), OWASP Dependency-Check (with an NVD
// API key) and SonarQube (with a server), gates on the findings and returns every report. The
// reports are returned even when the gate fails: export them, then call gate.
//
// +cache="never"
func (m *Wanderlust) Scan(
	ctx context.Context,
	// Application source with backend/ and frontend/.
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
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
	// NVD API key: enables OWASP Dependency-Check.
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
	// Mirror of Trivy's vulnerability DB (e.g. a registry you control), instead of ghcr.io.
	// +optional
	trivyDbRepository string,
) (*ScanReport, error) {
	policy, err := scanPolicy(failOn, maxCvss, allow)
	if err != nil {
		return nil, err
	}
	o := scan.Options{Policy: policy, NVDAPIKey: nvdApiKey, SonarURL: sonarUrl, SonarToken: sonarToken,
		SonarProjectKey: sonarProjectKey, TrivyDBRepository: trivyDbRepository}
	if images {
		built, err := build.Both(ctx, dag, source, build.Options{})
		if err != nil {
			return nil, err
		}
		o.Images = map[string]*dagger.Container{build.Backend: built.Backend, build.Frontend: built.Frontend}
	}
	res, err := scan.Run(ctx, dag, source, o)
	if err != nil {
		return nil, err
	}
	return &ScanReport{Reports: res.Reports, Passed: res.Verdict.Pass, Summary: res.Markdown, Reason: res.Verdict.Reason()}, nil
}

// Publish tests and builds both images and pushes them as <registry>/wanderlust-{backend,frontend}
// under the version and the source commit's short SHA. Prints one digest-pinned reference per image.
//
// +cache="never"
func (m *Wanderlust) Publish(
	ctx context.Context,
	// Application source with backend/ and frontend/.
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
	// Repository prefix, e.g. ghcr.io/wanderlust-app.
	registry string,
	// Release version, the image tag (e.g. 1.4.0).
	version string,
	// Registry user.
	// +optional
	username string,
	// Registry password or token.
	// +optional
	password *dagger.Secret,
	// Application commit SHA: also tags the images with its first 12 digits.
	// +optional
	sourceCommit string,
	// Build without running the tests.
	// +optional
	skipTests bool,
) (string, error) {
	built, err := build.Both(ctx, dag, source, build.Options{SkipTests: skipTests})
	if err != nil {
		return "", err
	}
	pub, err := publish.Images(ctx, map[string]*dagger.Container{build.Backend: built.Backend, build.Frontend: built.Frontend},
		publish.Options{Registry: registry, Username: username, Password: password, Version: version, SourceCommit: sourceCommit})
	if err != nil {
		return "", err
	}
	var lines []string
	for _, p := range pub {
		lines = append(lines, p.Name+" "+p.Ref)
	}
	return strings.Join(lines, "\n"), nil
}

// VerifyImages checks that every image tag exists in its registry and prints it digest-pinned
// (repo:tag@sha256:…), so that nothing unpushed is ever deployed and bump can pin digests.
//
// +cache="never"
func (m *Wanderlust) VerifyImages(
	ctx context.Context,
	// Image references to check, e.g. ghcr.io/wanderlust-app/wanderlust-backend:1.4.0.
	image []string,
	// Registry user.
	// +optional
	username string,
	// Registry password or token.
	// +optional
	password *dagger.Secret,
) (string, error) {
	pass, err := plaintext(ctx, password)
	if err != nil {
		return "", err
	}
	imgs, err := registry.Resolve(ctx, image, registry.Auth{Username: username, Password: pass})
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
// plain Deployments) and commits and pushes the change to the GitOps repository.
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
	// Manifests repository: https://…, ssh://…, git@host:path or file://… (no credentials in the URL).
	repo string,
	// Image updates: name=tag, name=sha256:<hex> or name=tag@sha256:<hex>; name is the image
	// repository or its last path element (e.g. wanderlust-backend=v1.2.3). Repeat or comma-separate.
	image []string,
	// Environment: edits kubernetes/overlays/<env>.
	// +optional
	env string,
	// Directory or file to edit instead of an environment's overlay (e.g. kubernetes for plain Deployments).
	// +optional
	path string,
	// Branch to commit to.
	// +default="main"
	branch string,
	// HTTPS token (sent as the basic-auth password; never logged).
	// +optional
	token *dagger.Secret,
	// HTTPS user for the token.
	// +default="x-access-token"
	tokenUser string,
	// SSH private key, for ssh:// and git@host:path URLs.
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
	updates, err := parseUpdates(image)
	if err != nil {
		return "", err
	}
	auth := git.Auth{Username: tokenUser, SSHKnownHosts: []byte(knownHosts)}
	if auth.Token, err = plaintext(ctx, token); err != nil {
		return "", err
	}
	key, err := plaintext(ctx, sshKey)
	if err != nil {
		return "", err
	}
	auth.SSHPrivateKey = []byte(key)

	res, err := bump.Run(ctx, bump.Options{
		Git: git.Options{
			URL: repo, Branch: branch, Auth: auth,
			Author:      git.Signature{Name: authorName, Email: authorEmail},
			MaxPushes: maxAttempts, DryRun: dryRun,
			Log: func(s string) { fmt.Fprintln(os.Stderr, s) },
		},
		Env: env, Path: path, Updates: updates,
		Message: message, SourceCommit: sourceCommit,
	})
	if err != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, res.Summary)
	switch {
	case dryRun:
		return res.Diff, nil
	case !res.Changed:
		return "unchanged", nil
	}
	return res.SHA, nil
}

// Sync makes Argo CD deploy a revision that is in git (hard refresh; a sync of that revision unless
// auto-sync does it) and waits until a revision holding that commit's image values is Synced and
// Healthy, as evaluated after the sync. Everything about the application is checked first (server,
// token, RBAC, that it tracks --repo and --branch, sync windows). With --rollback, a rollout that
// fails because of the revision has its image entries restored in git (a new commit), which is
// waited for too; the call still fails, reporting both. A newer commit that replaced the values ends
// the wait as "superseded".
//
// +cache="never"
func (m *Wanderlust) Sync(
	ctx context.Context,
	// Argo CD API server, host:port.
	server string,
	// Argo CD API token.
	token *dagger.Secret,
	// Application name.
	app string,
	// Commit SHA to deploy (the one bump pushed).
	revision string,
	// Namespace of the Application, when not Argo CD's own (apps in any namespace).
	// +optional
	appNamespace string,
	// Talk to the server without TLS.
	// +optional
	plainText bool,
	// Skip TLS verification.
	// +optional
	insecure bool,
	// Tunnel gRPC over HTTP/1 (through proxies without HTTP/2).
	// +optional
	grpcWeb bool,
	// Seconds to wait for Synced and Healthy.
	// +default=300
	timeout int,
	// Seconds Degraded health may last before the rollout counts as failed.
	// +default=30
	degradedGrace int,
	// Restore the revision's image entries when the rollout fails because of them.
	// +optional
	rollback bool,
	// GitOps repository: to judge revisions by content (the revision's image values), and for --rollback.
	// +optional
	repo string,
	// Branch of the GitOps repository.
	// +default="main"
	branch string,
	// Token for the GitOps repository.
	// +optional
	gitToken *dagger.Secret,
	// Identifies this run in the sync operation's info.
	// +optional
	runId string,
) (string, error) {
	if err := argocd.CheckAddress(server); err != nil {
		return "", err
	}
	argoToken, err := plaintext(ctx, token)
	if err != nil {
		return "", err
	}
	gitPass, err := plaintext(ctx, gitToken)
	if err != nil {
		return "", err
	}
	logf := func(s string) { fmt.Fprintln(os.Stderr, s) }
	out, err := deploy.Sync(ctx, deploy.SyncOptions{
		Argo: argocd.Options{Server: server, Token: argoToken, PlainText: plainText, Insecure: insecure, GRPCWeb: grpcWeb,
			App: app, AppNamespace: appNamespace, Revision: revision, Timeout: time.Duration(timeout) * time.Second,
			DegradedGrace: time.Duration(degradedGrace) * time.Second, RunID: runId, Log: logf},
		Git:      git.Options{URL: repo, Branch: branch, Auth: git.Auth{Token: gitPass}, Log: logf},
		Rollback: rollback,
	})
	if err != nil {
		return "", err
	}
	r := out.Deployed
	if r.Outcome == argocd.Superseded {
		return fmt.Sprintf("%s: superseded: %s", r.App, r.Reason), nil
	}
	return fmt.Sprintf("%s: Synced and Healthy at %s (refresh %s, operation %s, synced %s, healthy %s)",
		r.App, r.SyncedRevision, r.Refresh.Round(time.Millisecond), r.OperationStart.Round(time.Millisecond),
		r.Synced.Round(time.Millisecond), r.Healthy.Round(time.Millisecond)), nil
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
	// Application source with backend/ and frontend/.
	// +defaultPath="/"
	// +ignore=["**/node_modules", "**/dist", ".git"]
	source *dagger.Directory,
	// Environment: kubernetes/overlays/<env> and, by default, the Argo CD app wanderlust-<env>.
	env string,
	// Repository prefix of the images, e.g. ghcr.io/wanderlust-app.
	registry string,
	// GitOps repository holding kubernetes/.
	repo string,
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
	// Registry user.
	// +optional
	registryUsername string,
	// Registry password or token.
	// +optional
	registryPassword *dagger.Secret,
	// Pin image digests in the manifests.
	// +optional
	pinDigest bool,
	// Branch of the GitOps repository.
	// +default="main"
	branch string,
	// Token for the GitOps repository.
	// +optional
	gitToken *dagger.Secret,
	// Argo CD API server (host:port); without it the sync is skipped.
	// +optional
	argocdServer string,
	// Argo CD API token.
	// +optional
	argocdToken *dagger.Secret,
	// Argo CD application (default wanderlust-<env>).
	// +optional
	app string,
	// Namespace of the Application, when not Argo CD's own.
	// +optional
	appNamespace string,
	// Talk to Argo CD without TLS.
	// +optional
	argocdPlainText bool,
	// Skip Argo CD's TLS verification.
	// +optional
	insecure bool,
	// Tunnel gRPC to Argo CD over HTTP/1.
	// +optional
	grpcWeb bool,
	// Restore our image entries when the rollout fails because of them.
	// +default=true
	rollback bool,
	// Seconds to wait for Synced and Healthy.
	// +default=300
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
	// SMTP server; without it no email is sent.
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
	// Sender address.
	// +optional
	mailFrom string,
	// Recipients.
	// +optional
	mailTo []string,
	// Format of the printed run report: markdown or json.
	// +default="markdown"
	reportFormat string,
) (string, error) {
	render, err := renderer(reportFormat)
	if err != nil {
		return "", err
	}
	build := backendTag == "" && frontendTag == ""
	images, err := deployImages(registry, version, backendTag, frontendTag)
	if err != nil {
		return "", err
	}
	o, err := deployOptions(ctx, deployFlags{env: env, repo: repo, branch: branch, gitToken: gitToken,
		regUser: registryUsername, regPass: registryPassword, pinDigest: pinDigest, dryRun: dryRun,
		argoServer: argocdServer, argoToken: argocdToken, app: app, appNamespace: appNamespace, plainText: argocdPlainText,
		insecure: insecure, grpcWeb: grpcWeb, rollback: rollback, timeout: timeout,
		smtpHost: smtpHost, smtpPort: smtpPort, smtpTLS: smtpTls, smtpUser: smtpUsername, smtpPass: smtpPassword, from: mailFrom, to: mailTo,
		sourceCommit: sourceCommit, sourceCommitTime: sourceCommitTime})
	if err != nil {
		return "", err
	}
	o.Images = images
	if build && dryRun {
		o.SkipVerify = "--dry-run: the built images are not pushed"
	}
	rep := report.New("Wanderlust deploy", env)
	// Everything is checked before the first side effect: nothing is built, pushed or mailed when
	// an input, the repository or Argo CD is wrong.
	end := rep.Begin("preflight")
	err = deploy.Check(ctx, o)
	end(nil, err)
	if err != nil {
		deploy.Finish(ctx, *o, rep, err) // mailed (when the mail settings are valid), like any failed run
		return "", fmt.Errorf("%w\n\nnothing was built, pushed or synced\n\n%s", err, render(rep))
	}
	if build {
		refs, err := buildAndPublish(ctx, rep, source, skipScan, nvdApiKey, registry, version, registryUsername, registryPassword, sourceCommit, dryRun)
		if err != nil {
			deploy.Finish(ctx, *o, rep, err) // the failure is mailed like a failed rollout
			return "", fmt.Errorf("%w\n\n%s", err, render(rep))
		}
		o.Images = refs
	} else {
		for _, s := range []string{"scan", "build", "publish"} {
			rep.Skip(s, "images given")
		}
	}
	rep, err = deploy.Run(ctx, *o, rep)
	if err != nil {
		return "", fmt.Errorf("%w\n\n%s", err, render(rep))
	}
	return render(rep), nil
}

// Promote copies the exact images that run in one environment (digests where pinned) into the next
// one's overlay, commits, pushes, syncs the target's Argo CD app and waits, with the same preflight,
// verdict, rollback and report rules as deploy. It refuses to promote what is not Synced and Healthy.
//
// +cache="never"
func (m *Wanderlust) Promote(
	ctx context.Context,
	// Source environment, e.g. dev.
	from string,
	// Target environment, e.g. staging.
	to string,
	// GitOps repository.
	repo string,
	// Argo CD API server (host:port).
	argocdServer string,
	// Argo CD API token.
	argocdToken *dagger.Secret,
	// Argo CD application of the source environment (default wanderlust-<from>).
	// +optional
	fromApp string,
	// Argo CD application of the target environment (default wanderlust-<to>).
	// +optional
	toApp string,
	// Namespace of the Applications, when not Argo CD's own.
	// +optional
	appNamespace string,
	// Branch of the GitOps repository.
	// +default="main"
	branch string,
	// Token for the GitOps repository.
	// +optional
	gitToken *dagger.Secret,
	// Talk to Argo CD without TLS.
	// +optional
	argocdPlainText bool,
	// Skip Argo CD's TLS verification.
	// +optional
	insecure bool,
	// Tunnel gRPC to Argo CD over HTTP/1.
	// +optional
	grpcWeb bool,
	// Restore the target's image entries when the rollout fails because of them.
	// +default=true
	rollback bool,
	// Seconds to wait for Synced and Healthy.
	// +default=300
	timeout int,
) (string, error) {
	if argocdServer == "" {
		return "", errors.New("--argocd-server is required: promote checks and syncs Argo CD applications")
	}
	for _, env := range []string{from, to} {
		if err := bump.CheckEnv(env); err != nil {
			return "", err
		}
	}
	o, err := deployOptions(ctx, deployFlags{env: to, repo: repo, branch: branch, gitToken: gitToken,
		argoServer: argocdServer, argoToken: argocdToken, app: toApp, appNamespace: appNamespace, plainText: argocdPlainText,
		insecure: insecure, grpcWeb: grpcWeb, rollback: rollback, timeout: timeout})
	if err != nil {
		return "", err
	}
	rep, err := deploy.Promote(ctx, deploy.PromoteOptions{From: from, To: to, Git: o.Bump.Git, Argo: *o.Argo,
		FromApp: cmp.Or(fromApp, "wanderlust-"+from), ToApp: o.Argo.App, Rollback: rollback})
	if err != nil {
		return "", fmt.Errorf("%w\n\n%s", err, rep.Markdown())
	}
	return rep.Markdown(), nil
}
