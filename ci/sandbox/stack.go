// Package sandbox is what the GitOps program and the host harness share of the sandbox: the
// cluster's bootstrap (Argo CD's CRDs and configuration, the repository, the applications), the
// smart-HTTP git remote, the forwarder of `up`, and the host harness's stack (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok making pods Ready without a kubelet, redis, and Argo
// CD's three components, run with the sandbox's arguments — sandbox/layout), so that what the tests
// prove on the host is what the sandbox's images run.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"wanderlust.dev/pipeline/ci/sandbox/layout"
)

// Binaries are the programs Start runs from Config.Bin (redis-server and git come from PATH).
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "argocd", "kustomize", "rollouts-controller"}

// Config says how to run the stack.
type Config struct {
	// Bin holds Binaries; Dir is the working directory (data, logs, keys).
	Bin, Dir string
	// ServerPort is the Argo CD API/UI port (on every interface; default: a free port); AdminPassword
	// the admin password (default: random).
	ServerPort, AdminPassword string
	// Log, when set, gets progress lines.
	Log func(string)
	// KubernetesOnly starts Kubernetes, kwok and redis, and neither kwok's node nor Argo CD: the
	// sandbox's cluster, for its bootstrap; StartArgoCD starts Argo CD after it.
	KubernetesOnly bool
}

// Stack is a running Kubernetes + Argo CD.
type Stack struct {
	Dir string
	// KubeAPI is the API server URL; AdminToken a static token of system:masters.
	KubeAPI, AdminToken string
	// Server is the Argo CD API server (host:port, plaintext); Token an admin session token.
	Server, Token string
	// AdminPassword is the Argo CD admin password.
	AdminPassword string

	bin            string
	kube           *Kube
	kubernetesOnly bool
	logf           func(string)
	kubeconfig     string
	argoKubeconfig string // the cluster as Argo CD's components reach it
	redisAddr      string
	repoAddr       string
	mu             sync.Mutex
	procs          map[string]*exec.Cmd
	http           *http.Client
}

// Start brings the whole stack up; on error everything started is stopped (the logs stay in Dir).
func Start(c Config) (*Stack, error) {
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(c.Bin, b)); err != nil {
			return nil, fmt.Errorf("sandbox: %s is missing in %s", b, c.Bin)
		}
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("sandbox: redis-server is not installed")
	}
	if c.Dir == "" {
		return nil, errors.New("sandbox: no working directory")
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, err
	}
	h := &Stack{Dir: c.Dir, bin: c.Bin, kubernetesOnly: c.KubernetesOnly, logf: c.Log, procs: map[string]*exec.Cmd{}, AdminToken: randomHex(16),
		AdminPassword: c.AdminPassword, Server: "",
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}}
	if h.AdminPassword == "" {
		h.AdminPassword = randomHex(12)
	}
	if c.ServerPort != "" {
		h.Server = "127.0.0.1:" + c.ServerPort
	}
	if h.logf == nil {
		h.logf = func(string) {}
	}
	if err := h.start(); err != nil {
		h.Stop()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return h, nil
}

func (h *Stack) start() error {
	etcdPort, peerPort, apiPort := freePort(), freePort(), freePort()
	if err := h.run("etcd", filepath.Join(h.bin, "etcd"), nil, "--name=e2e", "--data-dir="+filepath.Join(h.Dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:"+etcdPort, "--advertise-client-urls=http://127.0.0.1:"+etcdPort,
		"--listen-peer-urls=http://127.0.0.1:"+peerPort, "--initial-advertise-peer-urls=http://127.0.0.1:"+peerPort,
		"--initial-cluster=e2e=http://127.0.0.1:"+peerPort, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	if err := h.waitHTTP("http://127.0.0.1:"+etcdPort+"/health", "", 30*time.Second); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}

	// Service-account keys and a static token for the tests.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	saKey, saPub := filepath.Join(h.Dir, "sa.key"), filepath.Join(h.Dir, "sa.pub")
	_ = os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	_ = os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
	tokens := filepath.Join(h.Dir, "tokens.csv")
	_ = os.WriteFile(tokens, []byte(h.AdminToken+",admin,admin,system:masters\n"), 0o600)

	h.KubeAPI = "https://127.0.0.1:" + apiPort
	if err := h.run("kube-apiserver", filepath.Join(h.bin, "kube-apiserver"), nil,
		"--etcd-servers=http://127.0.0.1:"+etcdPort, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+apiPort, "--cert-dir="+filepath.Join(h.Dir, "pki"), "--token-auth-file="+tokens,
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc", "--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.96.0.0/16", "--authorization-mode=RBAC", "--enable-priority-and-fairness=false",
		"--allow-privileged=true", "--v=0"); err != nil {
		return err
	}
	if err := h.waitHTTP(h.KubeAPI+"/readyz", h.AdminToken, 90*time.Second); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	h.kube = NewKube(h.KubeAPI, h.AdminToken)
	h.kubeconfig = filepath.Join(h.Dir, "kubeconfig")
	h.argoKubeconfig = h.kubeconfig
	kc := layout.Kubeconfig(h.KubeAPI, h.AdminToken)
	if err := os.WriteFile(h.kubeconfig, []byte(kc), 0o600); err != nil {
		return err
	}
	if err := h.run("kube-controller-manager", filepath.Join(h.bin, "kube-controller-manager"), nil,
		"--kubeconfig="+h.kubeconfig, "--authentication-kubeconfig="+h.kubeconfig, "--authorization-kubeconfig="+h.kubeconfig,
		"--leader-elect=false", "--service-account-private-key-file="+saKey,
		"--root-ca-file="+filepath.Join(h.Dir, "pki", "apiserver.crt"), "--use-service-account-credentials=false",
		"--bind-address=127.0.0.1", "--secure-port="+freePort(), "--controllers=*", "--node-monitor-grace-period=60s"); err != nil {
		return err
	}
	if err := h.run("kube-scheduler", filepath.Join(h.bin, "kube-scheduler"), nil,
		"--kubeconfig="+h.kubeconfig, "--authentication-kubeconfig="+h.kubeconfig, "--authorization-kubeconfig="+h.kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+freePort()); err != nil {
		return err
	}

	kwokConfig := filepath.Join(h.Dir, "kwok.yaml")
	if err := os.WriteFile(kwokConfig, []byte(kwokConfiguration(freePort())), 0o600); err != nil {
		return err
	}
	if err := h.run("kwok", filepath.Join(h.bin, "kwok"), nil, "--kubeconfig="+h.kubeconfig, "--config="+kwokConfig,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake"); err != nil {
		return err
	}

	// Chosen just before redis binds it (not with the others, a minute before, while the
	// API server starts): a port chosen early is free for anyone else to take meanwhile.
	redisPort := freePort()
	h.redisAddr = "127.0.0.1:" + redisPort
	if err := h.run("redis", "redis-server", nil, "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"); err != nil {
		return err
	}
	if h.kubernetesOnly {
		return nil
	}
	// One fake node, run by kwok.
	if err := FakeNode(h.kube); err != nil {
		return err
	}
	return h.startArgoCD()
}

// startArgoCD installs Argo CD's CRDs and configuration (InstallArgoCD, as the sandbox's bootstrap
// does) and starts its three components.
func (h *Stack) startArgoCD() error {
	if err := InstallArgoCD(h.kube, h.AdminPassword); err != nil {
		return err
	}
	if err := InstallRollouts(h.kube); err != nil {
		return err
	}
	if err := h.StartRollouts(h.kubeconfig); err != nil {
		return err
	}
	return h.startComponents()
}

// StartRollouts starts the Argo Rollouts controller with the sandbox's arguments
// (layout.RolloutsArgs) against the cluster as kubeconfig reaches it (its CRDs installed:
// InstallRollouts), and waits until it answers its health check.
func (h *Stack) StartRollouts(kubeconfig string) error {
	healthz := freePortNum()
	if err := h.run("rollouts-controller", filepath.Join(h.bin, "rollouts-controller"), []string{"HOME=" + h.Dir},
		layout.RolloutsArgs(kubeconfig, healthz, freePortNum())...); err != nil {
		return err
	}
	if err := h.waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz), "", 60*time.Second); err != nil {
		return fmt.Errorf("argo rollouts controller: %w", err)
	}
	return nil
}

// StartArgoCD starts Argo CD's three components, on a stack started KubernetesOnly, against the
// cluster as kubeconfig reaches it (the sandbox's bootstrap installed Argo CD there), and logs in
// as admin with Config.AdminPassword.
func (h *Stack) StartArgoCD(kubeconfig string) error {
	h.argoKubeconfig = kubeconfig
	return h.startComponents()
}

// startComponents starts the repo-server, the application controller and the API server with the
// sandbox's arguments (layout.ArgoCD).
func (h *Stack) startComponents() error {
	port := freePortNum()
	h.repoAddr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := h.runArgo("argocd-repo-server", port); err != nil {
		return err
	}
	if err := h.startController(); err != nil {
		return err
	}
	return h.StartServer()
}

// argoEnv is the environment of an Argo CD component running on the host, outside a cluster:
// layout.ArgoCDEnv (the kubeconfig as its in-cluster config, GPG off), the component's name (one
// binary runs all three), kustomize and git on PATH, and the configuration directories under the
// stack's directory instead of the image's /app/config.
func (h *Stack) argoEnv(component string) []string {
	dir := h.Dir
	cfg := filepath.Join(dir, "argocd-config")
	for _, d := range []string{"ssh", "tls", "gpg/source", "gpg/keys", "gnupg", "plugin"} {
		_ = os.MkdirAll(filepath.Join(cfg, d), 0o700)
	}
	return append(layout.ArgoCDEnv(h.argoKubeconfig), "ARGOCD_BINARY_NAME="+component,
		"PATH="+h.bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+dir,
		"ARGOCD_SSH_DATA_PATH="+filepath.Join(cfg, "ssh"), "ARGOCD_TLS_DATA_PATH="+filepath.Join(cfg, "tls"),
		"ARGOCD_GPG_DATA_PATH="+filepath.Join(cfg, "gpg/source"), "ARGOCD_GNUPGHOME="+filepath.Join(cfg, "gnupg"),
		"ARGOCD_PLUGINSOCKFILEPATH="+filepath.Join(cfg, "plugin"),
		// The repo-server's git credential helper listens on a socket: one per harness, so that two
		// harnesses (two test packages run at once) do not answer each other's git.
		"ARGOCD_ASK_PASS_SOCK="+filepath.Join(dir, "askpass.sock"))
}

// runArgo starts an Argo CD component on port with the sandbox's arguments (layout.ArgoCD.Args).
func (h *Stack) runArgo(component string, port int) error {
	static := filepath.Join(h.Dir, "static")
	_ = os.MkdirAll(static, 0o755)
	a := layout.ArgoCD{Port: port, MetricsPort: freePortNum(), Redis: h.redisAddr, RepoServer: h.repoAddr, StaticAssets: static}
	return h.run(component, filepath.Join(h.bin, "argocd"), h.argoEnv(component), a.Args(component)...)
}

func (h *Stack) startController() error {
	return h.runArgo("argocd-application-controller", freePortNum())
}

// StartServer starts (or restarts) the Argo CD API server and logs in as admin.
func (h *Stack) StartServer() error {
	port := freePort()
	if h.Server != "" {
		port = strings.Split(h.Server, ":")[1]
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("argocd-server: port %q: %w", port, err)
	}
	if err := h.runArgo("argocd-server", p); err != nil {
		return err
	}
	h.Server = "127.0.0.1:" + port
	if err := h.waitHTTP("http://"+h.Server+"/healthz", "", 60*time.Second); err != nil {
		return fmt.Errorf("argocd-server: %w", err)
	}
	if h.Token != "" {
		return nil
	}
	token, err := Login(context.Background(), h.Server, h.AdminPassword)
	if err != nil {
		return err
	}
	h.Token = token
	return nil
}

// Login returns an Argo CD session token for admin from the API server at server (host:port,
// plain text).
func Login(ctx context.Context, server, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+server+"/api/v1/session", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("argocd login: %w", err)
	}
	defer resp.Body.Close()
	var s struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.Token == "" {
		return "", fmt.Errorf("argocd login: %s", resp.Status)
	}
	return s.Token, nil
}

// StopServer kills the Argo CD API server (the controller keeps working).
func (h *Stack) StopServer() { h.stop("argocd-server") }

// AddRepository registers a git repository and its credentials with Argo CD.
func (h *Stack) AddRepository(url, user, password string) error {
	return h.kube.AddRepository(url, user, password)
}

// Apply server-side-applies one or more YAML/JSON documents with the admin token.
func (h *Stack) Apply(manifests string) error { return h.kube.Apply(manifests) }

// Get reads a resource as JSON from the API server (path like /api/v1/namespaces/x/pods).
func (h *Stack) Get(path string, into any) error { return h.kube.Get(path, into) }

var plurals = map[string]string{"Namespace": "namespaces", "ConfigMap": "configmaps", "Secret": "secrets", "Node": "nodes",
	"CustomResourceDefinition": "customresourcedefinitions", "Application": "applications", "AppProject": "appprojects",
	"Deployment": "deployments", "Service": "services", "PersistentVolume": "persistentvolumes"}

var clusterScoped = map[string]bool{"Namespace": true, "Node": true, "CustomResourceDefinition": true, "PersistentVolume": true}

func resourcePath(d *yaml.RNode) (string, error) {
	kind := d.GetKind()
	plural, ok := plurals[kind]
	if !ok {
		return "", fmt.Errorf("harness: cannot apply kind %s", kind)
	}
	prefix := "/apis/" + d.GetApiVersion()
	if !strings.Contains(d.GetApiVersion(), "/") {
		prefix = "/api/" + d.GetApiVersion()
	}
	if clusterScoped[kind] {
		return prefix + "/" + plural + "/" + d.GetName(), nil
	}
	ns := d.GetNamespace()
	if ns == "" {
		ns = "default"
	}
	return prefix + "/namespaces/" + ns + "/" + plural + "/" + d.GetName(), nil
}

func yamlDocs(s string) ([]*yaml.RNode, error) {
	var out []*yaml.RNode
	dec := yaml.NewDecoder(strings.NewReader(s))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if err == io.EOF {
				return out, nil
			}
			return nil, err
		}
		if len(n.Content) == 1 && n.Content[0].Kind == yaml.MappingNode {
			out = append(out, yaml.NewRNode(n.Content[0]))
		}
	}
}

// run starts a component with its output in Dir/logs/<name>.log.
func (h *Stack) run(name, path string, env []string, args ...string) error {
	_ = os.MkdirAll(filepath.Join(h.Dir, "logs"), 0o755)
	logf, err := os.OpenFile(filepath.Join(h.Dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	h.mu.Lock()
	h.procs[name] = cmd
	h.mu.Unlock()
	go func() { _ = cmd.Wait(); logf.Close() }()
	return nil
}

func (h *Stack) stop(name string) {
	h.mu.Lock()
	cmd := h.procs[name]
	delete(h.procs, name)
	h.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && syscall.Kill(cmd.Process.Pid, 0) == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops every component (the working directory stays: its logs are in Dir/logs).
func (h *Stack) Stop() {
	for _, name := range []string{"argocd-server", "argocd-application-controller", "argocd-repo-server", "rollouts-controller", "redis", "kwok",
		"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		h.stop(name)
	}
}

// Logs returns the tail (up to n bytes) of the Argo CD components' and kwok's logs.
func (h *Stack) Logs(n int) string { return Logs(h.Dir, n) }

// Logs returns the tail (up to n bytes) of the component logs of a stack's working directory, also
// after Start failed.
func Logs(dir string, n int) string {
	var b strings.Builder
	for _, name := range []string{"argocd-application-controller", "argocd-server", "argocd-repo-server", "rollouts-controller", "kwok", "kube-apiserver", "etcd"} {
		l, _ := os.ReadFile(filepath.Join(dir, "logs", name+".log"))
		if len(l) > n {
			l = l[len(l)-n:]
		}
		if len(l) > 0 {
			fmt.Fprintf(&b, "--- %s (tail)\n%s\n", name, l)
		}
	}
	return b.String()
}

func (h *Stack) waitHTTP(url, token string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := h.http.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status + " " + string(b)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %s", url, timeout, last)
}

func freePort() string { return strconv.Itoa(freePortNum()) }

func freePortNum() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// Application creates an Argo CD Application deploying overlay of repoURL into namespace ns, with
// automated sync (prune, self-heal) when auto, and the static volumes its StatefulSets claim.
func (h *Stack) Application(name, repoURL, overlay, ns string, auto bool) error {
	return h.App(AppSpec{Name: name, RepoURL: repoURL, Overlay: overlay, Namespace: ns, Auto: auto})
}

// AppSpec describes a Application beyond Application's defaults.
type AppSpec struct {
	Name, RepoURL, Overlay, Namespace string
	Auto                              bool
	// Project (default "default"), TargetRevision (default "main").
	Project, TargetRevision string
	// MultiSource gives the application two sources: a ref-only source of the same repository
	// first (as Helm value files are referenced), then the overlay (so ours is at index 1).
	MultiSource bool
}

// App creates an Application from spec, with the static volumes its StatefulSets claim.
func (h *Stack) App(s AppSpec) error {
	if err := h.kube.volumes(s.Namespace); err != nil {
		return err
	}
	if s.Project == "" {
		s.Project = "default"
	}
	if s.TargetRevision == "" {
		s.TargetRevision = "main"
	}
	policy := `"syncOptions":["CreateNamespace=true"]`
	if s.Auto {
		policy = `"automated":{"prune":true,"selfHeal":true},` + policy
	}
	overlay := fmt.Sprintf(`{"repoURL":%q,"targetRevision":%q,"path":"kubernetes/overlays/%s"}`, s.RepoURL, s.TargetRevision, s.Overlay)
	source := `"source":` + overlay
	if s.MultiSource {
		source = fmt.Sprintf(`"sources":[{"repoURL":%q,"targetRevision":%q,"ref":"values"},%s]`, s.RepoURL, s.TargetRevision, overlay)
	}
	return h.Apply(fmt.Sprintf(`{"apiVersion":"argoproj.io/v1alpha1","kind":"Application","metadata":{"name":%q,"namespace":"argocd"},
"spec":{"project":%q,%s,"destination":{"server":"https://kubernetes.default.svc","namespace":%q},"syncPolicy":{%s}}}`,
		s.Name, s.Project, source, s.Namespace, policy))
}

// Project creates an AppProject that may deploy anything anywhere, with the extra spec fields given
// as JSON members (e.g. `"roles":[…]` or `"syncWindows":[…]`; "" for none).
func (h *Stack) Project(name, extra string) error {
	if extra != "" {
		extra = "," + extra
	}
	return h.Apply(fmt.Sprintf(`{"apiVersion":"argoproj.io/v1alpha1","kind":"AppProject","metadata":{"name":%q,"namespace":"argocd"},
"spec":{"sourceRepos":["*"],"destinations":[{"server":"*","namespace":"*"}],"clusterResourceWhitelist":[{"group":"*","kind":"*"}]%s}}`, name, extra))
}

// ProjectToken issues a JWT for a role of a project through Argo CD's API (as admin).
func (h *Stack) ProjectToken(project, role string) (string, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.Server+"/api/v1/projects/"+project+"/roles/"+role+"/token",
		strings.NewReader(`{"expiresIn":3600}`))
	req.Header.Set("Authorization", "Bearer "+h.Token)
	req.Header.Set("Content-Type", "application/json")
	var resp *http.Response
	var err error
	// The server sees a new project a moment after it is created.
	for i := 0; i < 20; i++ {
		if resp, err = h.http.Do(req); err == nil && resp.StatusCode == http.StatusOK {
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		time.Sleep(250 * time.Millisecond)
		req.Body = io.NopCloser(strings.NewReader(`{"expiresIn":3600}`))
	}
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("create token for %s/%s: %s: %s", project, role, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		return "", fmt.Errorf("create token for %s/%s: no token in the answer (%v)", project, role, err)
	}
	return out.Token, nil
}

// NeverReady marks an image whose pods kwok never makes Ready (layout.KwokStages).
const NeverReady = layout.NeverReady

// kwokConfiguration is kwok's configuration (every play-stage parallelism set, as the bare binary
// needs) and the stages it plays, adapted from kwok's "fast" stages: nodes initialize at once; pods
// become Ready at once unless an image contains NeverReady; deleted pods go.
func kwokConfiguration(port string) string {
	return fmt.Sprintf(`apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  serverAddress: 127.0.0.1:%s
  nodePlayStageParallelism: 4
  podPlayStageParallelism: 4
  nodeLeaseParallelism: 4
  podsOnNodeSyncParallelism: 4
  nodeLeaseDurationSeconds: 40
---
`, port) + layout.KwokStages
}
