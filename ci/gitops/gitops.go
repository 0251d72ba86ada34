// Package gitops is the contract between the Dagger module and the GitOps program (ci/cmd/gitops,
// a Go module of its own, so that Argo CD's and Kubernetes' packages stay out of the module's Go
// graph): the module runs the program in a container with one request, as JSON in its arguments, and
// the credentials as secret variables; the program answers with one Result, as JSON on stdout.
//
// Nothing here talks to anything: the types, the names of the secret variables, and the reading and
// writing of both sides, tested from both sides.
package gitops

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/stages/evidence"
	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/probe"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// The secret variables the program reads its credentials from (never flags, never the request).
const (
	EnvGitToken         = "WANDERLUST_GIT_TOKEN"
	EnvArgoCDToken      = "WANDERLUST_ARGOCD_TOKEN"
	EnvRegistryPassword = "WANDERLUST_REGISTRY_PASSWORD"
	EnvSMTPPassword     = "WANDERLUST_SMTP_PASSWORD"
	EnvWebhookURL       = "WANDERLUST_WEBHOOK_URL"
	// EnvOIDCToken is the OIDC identity token keyless signing trades for a certificate; or
	// EnvOIDCRequestURL and EnvOIDCRequestToken, GitHub Actions' ACTIONS_ID_TOKEN_REQUEST_URL and
	// _TOKEN, with which the program asks for one when it signs.
	EnvOIDCToken        = "WANDERLUST_OIDC_TOKEN"
	EnvOIDCRequestURL   = "WANDERLUST_OIDC_REQUEST_URL"
	EnvOIDCRequestToken = "WANDERLUST_OIDC_REQUEST_TOKEN"
)

// Commands of the program that take a request.
const (
	CmdDeploy  = "deploy"
	CmdPromote = "promote"
	CmdSync    = "sync"
	// CmdCanary continues (promote-canary) or undoes (abort-canary) a canary left paused.
	CmdCanary = "canary"
	// CmdAttest signs an image's digest and statements keyless and stores them (publish, deploy).
	CmdAttest = "attest"
	// CmdVerifyEvidence checks an image's evidence by identity (verify-evidence, keyless).
	CmdVerifyEvidence = "verify-evidence"
)

// Phases of a deploy: the module runs the preflight before it builds anything, then the run with the
// built images; a failed container stage is finished (recorded, mailed) by the program too.
const (
	PhasePreflight = "preflight"
	PhaseRun       = "run"
	PhaseFailed    = "failed"
)

// Config is the module's constructor configuration that the program needs (no secret).
type Config struct {
	// Repo, Branch and GitUser name the GitOps repository and its login.
	Repo, Branch, GitUser string `json:",omitempty"`
	// ArgoCD is the Argo CD API server (empty: none).
	ArgoCD ArgoCD `json:",omitzero"`
	// Registry is the registry host the registry login belongs to; RegistryUser its user.
	Registry, RegistryUser string `json:",omitempty"`
	// SMTP is the mail server (Host empty: no mail).
	SMTP SMTP `json:",omitzero"`
}

// ArgoCD is the Argo CD server's address and connection.
type ArgoCD struct {
	Server                       string `json:",omitempty"`
	PlainText, Insecure, GRPCWeb bool   `json:",omitempty"`
	AppNamespace                 string `json:",omitempty"`
	// RepoURL is the GitOps repository as the applications name it, when not Repo (an internal
	// mirror; the sandbox's http://git:8080/… behind a forwarded port).
	RepoURL string `json:",omitempty"`
}

// Check checks the server's address and RepoURL (no credentials: never echoed).
func (a ArgoCD) Check() error {
	if err := CheckServer(a.Server); err != nil {
		return err
	}
	if a.RepoURL != "" && git.HasCredentials(a.RepoURL) {
		return errors.New("argocd: --argocd-repo-url carries credentials or does not parse (not shown): want the repository URL as the applications name it")
	}
	return nil
}

// SMTP are the mail settings.
type SMTP struct {
	Host                string   `json:",omitempty"`
	Port                int      `json:",omitempty"`
	TLS, Username, From string   `json:",omitempty"`
	To                  []string `json:",omitempty"`
}

// ErrNoArgoCD refuses a deploy given no Argo CD server and no --no-sync.
var ErrNoArgoCD = errors.New("deploy needs Argo CD to sync, judge and roll back: give --argocd-server and --argocd-token (an empty server, e.g. an unset CI variable, is not taken for \"skip the sync\"), or pass --no-sync to push only")

// CheckTimeout checks a --timeout in seconds (0: derived from the rollout).
func CheckTimeout(seconds int) error {
	if seconds < 0 {
		return fmt.Errorf("--timeout %d: want a positive number of seconds (or none: derived from the rollout)", seconds)
	}
	return nil
}

// SourceCommitTime reads --source-commit-time (RFC 3339; "" is the zero time).
func SourceCommitTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--source-commit-time %q: want RFC 3339, e.g. 2026-11-28T09:30:00Z", s)
	}
	return t, nil
}

// CheckServer validates an Argo CD server address (host:port) without contacting it — in the module,
// before anything runs, and in the program. An address carrying credentials is never echoed.
func CheckServer(server string) error {
	host, port, err := net.SplitHostPort(server)
	if strings.Contains(server, "@") {
		// Never echo it: the part before "@" may be a token.
		return errors.New("argocd: --argocd-server carries credentials (not shown); want host:port, and the token in --argocd-token")
	}
	if err != nil || host == "" || port == "" || strings.ContainsAny(server, "/ ") {
		return fmt.Errorf("argocd: server %q: want host:port (no scheme, path or credentials)", server)
	}
	return nil
}

// Evidence is the gate on the images' evidence: the public key or the keyless identity, and what
// the provenance and the verdict must show; or AllowUnverified, the reason to skip it.
type Evidence struct {
	VerifyKeyPEM string `json:",omitempty"`
	// Keyless, when set, checks certificates by identity instead of signatures by key.
	Keyless                  *Keyless `json:",omitempty"`
	SourceRepo, SourceCommit string   `json:",omitempty"`
	FailOn                   string   `json:",omitempty"`
	AllowUnverified          string   `json:",omitempty"`
}

// Policy is the evidence policy the gate applies.
func (e Evidence) Policy() evidence.Policy {
	return evidence.Policy{SourceRepo: e.SourceRepo, SourceCommit: e.SourceCommit, FailOn: e.FailOn}
}

// Keyless is keyless signing's Sigstore (Fulcio, Rekor v2, the timestamp authority; empty: the
// public instances) and trusted root, and the identity the gate requires of certificates.
type Keyless struct {
	FulcioURL, RekorURL, TSAURL string `json:",omitempty"`
	// TrustedRoot is a trusted_root.json (empty: Sigstore's public root, over TUF).
	TrustedRoot string `json:",omitempty"`
	// Identity or IdentityRegexp is the certificate's subject; Issuer or IssuerRegexp its OIDC issuer.
	Identity, IdentityRegexp, Issuer, IssuerRegexp string `json:",omitempty"`
}

// Attest is keyless signing's request: one image and its statements, read from StatementsFile (an
// SBOM outgrows a command-line argument).
type Attest struct {
	Config
	Image          string
	StatementsFile string
	Keyless        Keyless
}

// VerifyEvidence is verify-evidence's request when the gate is keyless.
type VerifyEvidence struct {
	Config
	Image    string
	Evidence Evidence
}

// Verifier loads the public key.
func (e Evidence) Verifier() (*evidence.Verifier, error) {
	if e.VerifyKeyPEM == "" {
		return nil, errors.New("evidence: no public key to verify with")
	}
	return evidence.LoadVerifier([]byte(e.VerifyKeyPEM))
}

// Deploy is a deploy's request.
type Deploy struct {
	Config
	Phase string
	// Error is the failed container stage's error (PhaseFailed).
	Error string `json:",omitempty"`
	Env   string
	App   string `json:",omitempty"`
	// Images are the references to deploy, repo:tag.
	Images                              []string `json:",omitempty"`
	PinDigest, DryRun, Rollback, SkipCI bool     `json:",omitempty"`
	NoSync                              bool     `json:",omitempty"`
	SourceCommit, SourceCommitTime      string   `json:",omitempty"`
	TimeoutSeconds                      int      `json:",omitempty"`
	// SkipVerify deploys without verifying the images, for this reason (a dry run's unpushed build).
	SkipVerify string      `json:",omitempty"`
	Verify     probe.Flags `json:",omitzero"`
	Canary     `json:",omitzero"`
	// Evidence, when set, gates the images.
	Evidence *Evidence `json:",omitempty"`
	RunID    string
	// Report is the run's report so far (the module's stages); the program goes on with it.
	Report *report.Run `json:",omitempty"`
}

// Promote is a promotion's request.
type Promote struct {
	Config
	From, To, FromApp, ToApp string
	Rollback                 bool        `json:",omitempty"`
	TimeoutSeconds           int         `json:",omitempty"`
	Verify                   probe.Flags `json:",omitzero"`
	Canary                   `json:",omitzero"`
	Evidence                 Evidence
	RunID                    string
}

// Canary says how the pauses of Argo Rollouts are passed (deploy, promote).
type Canary struct {
	// CanarySteps is "auto" (default: the checks decide at each pause) or "manual" (stop at the
	// first pause).
	CanarySteps string `json:",omitempty"`
	// VerifyCanaryURLs are checked at each pause instead of Verify's URLs (with Verify's other
	// settings): the canary's or the preview's Service.
	VerifyCanaryURLs []string `json:",omitempty"`
}

// The ways of passing the pauses of Argo Rollouts (Canary.CanarySteps).
const (
	CanaryAuto   = "auto"
	CanaryManual = "manual"
)

// Check checks the canary settings on their face.
func (c Canary) Check() error {
	switch c.CanarySteps {
	case "", CanaryAuto, CanaryManual:
	default:
		return fmt.Errorf("--canary-steps %q: want %s or %s", c.CanarySteps, CanaryAuto, CanaryManual)
	}
	for _, u := range c.VerifyCanaryURLs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("--verify-canary-url %q: want an http or https URL", u)
		}
	}
	return nil
}

// CanaryChecks are the checks at each pause: Verify's, against VerifyCanaryURLs when given.
func (c Canary) CanaryChecks(verify probe.Flags) probe.Flags {
	if len(c.VerifyCanaryURLs) > 0 {
		verify.URLs = c.VerifyCanaryURLs
	}
	return verify
}

// ContinueCanary is a promote-canary's or an abort-canary's request.
type ContinueCanary struct {
	Config
	Env, App       string
	Abort          bool        `json:",omitempty"`
	TimeoutSeconds int         `json:",omitempty"`
	Verify         probe.Flags `json:",omitzero"`
	Canary         `json:",omitzero"`
}

// Sync is a sync's request.
type Sync struct {
	Config
	App, Revision                 string
	TimeoutSeconds, DegradedGrace int         `json:",omitempty"`
	Rollback, AllowOlder          bool        `json:",omitempty"`
	Verify                        probe.Flags `json:",omitzero"`
	RunID                         string
}

// Result is the program's answer: the run's report (deploy, promote), or the output line (sync), and
// the error of a failed run.
type Result struct {
	Error  string      `json:",omitempty"`
	Report *report.Run `json:",omitempty"`
	Output string      `json:",omitempty"`
	// Attached is what attest stored.
	Attached *evidence.Attached `json:",omitempty"`
}

// Args are the program's arguments for a request.
func Args(cmd string, request any) ([]string, error) {
	b, err := json.Marshal(request)
	if err != nil {
		return nil, fmt.Errorf("gitops: %s request: %w", cmd, err)
	}
	return []string{Program, cmd, "--request", string(b)}, nil
}

// Program is the program's name in its image (on the PATH).
const Program = "wanderlust-gitops"

// ReadRequest decodes a request, refusing unknown fields (a module and a program of two versions).
func ReadRequest(s string, into any) error {
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	if err := d.Decode(into); err != nil {
		return fmt.Errorf("gitops: request: %w (is the runner image the module's version?)", err)
	}
	return nil
}

// ReadResult decodes the program's stdout.
func ReadResult(stdout string) (*Result, error) {
	var r Result
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &r); err != nil {
		return nil, fmt.Errorf("gitops: the program's answer is not a result: %w", err)
	}
	return &r, nil
}
