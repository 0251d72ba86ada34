// Package layout is the sandbox's fixed names, ports and paths: what its Dagger recipes and the
// module need, without the sandbox's servers (package sandbox), so that they stay out of the
// module's Go graph.
package layout

import (
	"fmt"
	"strings"
)

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
	ImageKubernetes = "/opt/sandbox/kubernetes"
	ImageData       = "/var/lib/sandbox"
)

// The versions the sandbox runs: those of the host harness (hack/e2e/build.sh), so that what the
// tests prove on the host is what the sandbox runs (a test compares them).
const (
	KubernetesVersion = "v1.34.8"
	KwokVersion       = "v0.8.0"
	ArgoCDVersion     = "v2.14.21"
	RolloutsVersion   = "v1.10.1" // Argo Rollouts (hack/e2e/rollouts builds its controller)
)

// The sandbox's images, pinned by version tag and fully qualified.
const (
	// KubeImage is kwok's all-in-one cluster (etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler and kwok, started by `kwokctl create cluster`), serving the API without
	// authentication through `kubectl proxy` on KubePort. kwok v0.8.0 publishes it for the
	// Kubernetes versions of its supported_releases.txt (1.34.8 among them; a test reads it).
	KubeImage = "registry.k8s.io/kwok/cluster:" + KwokVersion + "-k8s." + KubernetesVersion
	// ArgoCDImage runs the API server, the repo-server and the application controller.
	ArgoCDImage = "quay.io/argoproj/argocd:" + ArgoCDVersion
	// RedisImage is the redis of Argo CD's own install.yaml (a test compares them).
	RedisImage = "docker.io/library/redis:7.2.11-alpine"
	// MailpitImage catches the mail: SMTP on SMTPPort, web UI and JSON API on MailHTTPPort.
	MailpitImage = "docker.io/axllent/mailpit:v1.33.1"
	// RolloutsImage is the Argo Rollouts controller (it drives the canary and blue-green Rollouts of
	// the overlays that use kubernetes/components).
	RolloutsImage = "quay.io/argoproj/argo-rollouts:" + RolloutsVersion
	// RegistryImage is the CNCF distribution registry (plain HTTP inside the engine).
	RegistryImage = "docker.io/library/registry:3.0.0"
)

// The Argo CD stack's services: their aliases and ports.
const (
	KubeHost, KubePort             = "kube", 8080
	RedisHost, RedisPort           = "argocd-redis", 6379
	RepoServerHost, RepoServerPort = "argocd-repo-server", 8081
	ControllerHost, ControllerPort = "argocd-application-controller", 8082 // its metrics
	BootstrapHost                  = "bootstrap"                           // answers on HealthPort once done
	RolloutsHost, RolloutsPort     = "argo-rollouts", 8080                 // its healthz
	RolloutsMetricsPort            = 8090
	// RolloutsUser is the user Argo Rollouts' image runs as (its Dockerfile's USER); the controller
	// finds the cluster at RolloutsKubeconfig.
	RolloutsUser       = "999"
	RolloutsKubeconfig = "/etc/argo-rollouts/kubeconfig"
	// ArgoCDUser is the user Argo CD's image runs as (its Dockerfile's ARGOCD_USER_ID).
	ArgoCDUser = "999"
	// ArgoCDKubeconfig is where the Argo CD containers find the cluster (KUBECONFIG).
	ArgoCDKubeconfig = "/home/argocd/.kube/config"
	// NeverReady marks an image whose pods kwok never makes Ready (KwokStages): a Deployment that
	// runs it exceeds its progress deadline and Argo CD reports it Degraded.
	NeverReady = "never-ready"
)

// ArgoCD says where an Argo CD component finds the others.
type ArgoCD struct {
	// Port is the component's own port (API/UI, or the repo-server's gRPC); MetricsPort its metrics.
	Port, MetricsPort int
	// Redis and RepoServer are host:port.
	Redis, RepoServer string
	// StaticAssets is the UI's directory ("": the image's /shared/app).
	StaticAssets string
}

// Components are Argo CD's three components, by the command the image runs them as.
var Components = []string{"argocd-repo-server", "argocd-application-controller", "argocd-server"}

// Args are the arguments of an Argo CD component (one of Components) outside Kubernetes, the same
// in the sandbox's containers and in the host harness: plain text between the components (the
// sandbox is one private network), reconciliation every 10 s.
func (a ArgoCD) Args(component string) []string {
	port, metrics := fmt.Sprint(a.Port), fmt.Sprint(a.MetricsPort)
	switch component {
	case "argocd-repo-server":
		return []string{"--port", port, "--metrics-port", metrics, "--redis", a.Redis, "--disable-tls", "--loglevel", "warn"}
	case "argocd-application-controller":
		return []string{"--repo-server", a.RepoServer, "--repo-server-plaintext", "--redis", a.Redis, "--metrics-port", metrics,
			"--status-processors", "4", "--operation-processors", "4", "--app-resync", "10", "--self-heal-timeout-seconds", "1",
			"--loglevel", "warn"}
	case "argocd-server":
		args := []string{"--insecure", "--port", port, "--metrics-port", metrics, "--repo-server", a.RepoServer, "--repo-server-plaintext",
			"--redis", a.Redis, "--loglevel", "warn"}
		if a.StaticAssets != "" {
			args = append(args, "--staticassets", a.StaticAssets)
		}
		return args
	}
	panic("layout: no Argo CD component " + component)
}

// RolloutsArgs are the Argo Rollouts controller's arguments outside Kubernetes, the same in the
// sandbox's container and in the host harness: the cluster from the kubeconfig at kubeconfig, one
// instance (no leader election), its health and metrics on the given ports.
func RolloutsArgs(kubeconfig string, healthz, metrics int) []string {
	return []string{"--kubeconfig", kubeconfig, "--leader-elect=false", "--healthzPort", fmt.Sprint(healthz),
		"--metricsPort", fmt.Sprint(metrics), "--loglevel", "warn"}
}

// ArgoCDEnv is the environment every Argo CD component needs outside a pod: the cluster from the
// kubeconfig at kubeconfig, which also serves the in-cluster destination
// (https://kubernetes.default.svc), and GPG off (no keyring is mounted).
func ArgoCDEnv(kubeconfig string) []string {
	return []string{"KUBECONFIG=" + kubeconfig, "ARGOCD_FAKE_IN_CLUSTER=true", "ARGOCD_GPG_ENABLED=false"}
}

// Kubeconfig is a kubeconfig for server (with token, when not ""; TLS unverified for https), in
// namespace argocd.
func Kubeconfig(server, token string) string {
	user := "{}"
	if token != "" {
		user = fmt.Sprintf("{token: %q}", token)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster: {server: %q, insecure-skip-tls-verify: %t}
users:
- name: admin
  user: %s
contexts:
- name: sandbox
  context: {cluster: sandbox, user: admin, namespace: argocd}
current-context: sandbox
`, server, strings.HasPrefix(server, "https:"), user)
}

// KwokStages are the stages kwok plays, adapted from kwok's "fast" stages: nodes initialize at once;
// pods become Ready at once unless an image contains NeverReady; deleted pods go. The host harness
// gives them to its kwok, the sandbox to `kwokctl create cluster --config`.
const KwokStages = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
      addresses:
      - address: 127.0.0.1
        type: InternalIP
      - address: {{ NodeName | Quote }}
        type: Hostname
      allocatable:
      {{ YAML .status.allocatable 1 }}
      capacity:
      {{ YAML .status.capacity 1 }}
      nodeInfo:
        architecture: amd64
        kubeletVersion: fake
        operatingSystem: linux
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Pending']
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values: ['True']
    - key: '.spec.containers.[] | select( .image | contains("` + NeverReady + `") ) | .image'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      initContainerStatuses:
      {{ range .spec.initContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      hostIP: 127.0.0.1
      podIP: 127.0.0.1
      phase: Running
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    delete: true
`
