// Package layout is the sandbox's fixed names, ports and paths: what its Dagger recipes and the
// module need, without the sandbox's servers (package sandbox), so that they stay out of the
// module's Go graph.
package layout

import "fmt"

// The sandbox's fixed ports, inside each service.
const (
	ArgoCDPort   = 8080 // Argo CD API and UI (plain text, gRPC and HTTP on one port)
	HealthPort   = 8081 // answers only once the service is ready (the Dagger service waits for it)
	GitPort      = 8080
	RegistryPort = 5000
	SMTPPort     = 1025
	MailHTTPPort = 8025
	RepoName     = "wanderlust" // the GitOps repository: /wanderlust.git
	Branch       = "main"
	// ProgressDeadline is the backend's and frontend's progress deadline in the sandbox's overlays
	// (seconds): a rollout that never becomes Ready is Degraded, and rolled back, in seconds.
	ProgressDeadline = 10
)

// How the services and the runner reach each other (their Dagger service aliases), and the git
// remote's user.
const (
	GitHost, RegistryHost, MailHost, ArgoCDHost = "git", "registry", "mail", "argocd"
	GitUser                                     = "sandbox"
)

// RepoURL is the GitOps repository as the services and the runner reach it.
func RepoURL() string { return fmt.Sprintf("http://%s:%d/%s.git", GitHost, GitPort, RepoName) }

// Where the sandbox's image keeps things (the GitOps program's defaults).
const (
	ImageBin        = "/opt/sandbox/bin"
	ImageManifests  = "/opt/sandbox/argo-cd/manifests"
	ImageKubernetes = "/opt/sandbox/kubernetes"
	ImageData       = "/var/lib/sandbox"
)
