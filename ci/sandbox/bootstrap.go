package sandbox

import (
	"bytes"
	"context"
	"crypto/tls"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// argoCDManifests are what of Argo CD v2.14.21's install.yaml the sandbox installs: the Application
// and AppProject CRDs and the ConfigMaps and Secrets (notifications left out). Generated from the
// argo-cd module's manifests; TestBootstrapManifestsAreArgoCDs keeps them equal (-update rewrites).
//
//go:embed argocd-bootstrap.yaml
var argoCDManifests string

// rolloutsCRDs are Argo Rollouts v1.10.1's CRDs (Rollout, AnalysisRun, AnalysisTemplate,
// ClusterAnalysisTemplate, Experiment: its controller watches them all), as published in the
// argo-rollouts module's manifests/crds; TestRolloutsCRDsAreArgoRollouts keeps them equal.
//
//go:embed rollouts-crds.yaml
var rolloutsCRDs string

// Kube is the little of the Kubernetes API the sandbox needs: server-side apply and get.
type Kube struct {
	// URL is the API server (https with Token; or http through `kubectl proxy`, Token "").
	URL, Token string
	http       *http.Client
}

// NewKube is a client of the API server at url; TLS is not verified (a local, throw-away cluster).
func NewKube(url, token string) *Kube {
	return &Kube{URL: strings.TrimSuffix(url, "/"), Token: token, http: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: insecureTLS()}}}
}

func (k *Kube) do(req *http.Request) (*http.Response, error) {
	if k.Token != "" {
		req.Header.Set("Authorization", "Bearer "+k.Token)
	}
	return k.http.Do(req)
}

// WaitReady waits until the API server answers /readyz.
func (k *Kube) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := errors.New("no answer")
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, k.URL+"/readyz", nil)
		resp, err := k.do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("readyz: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("the Kubernetes API at %s is not ready after %s: %w", k.URL, timeout, last)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Apply server-side-applies one or more YAML/JSON documents.
func (k *Kube) Apply(manifests string) error {
	docs, err := yamlDocs(manifests)
	if err != nil {
		return err
	}
	for _, d := range docs {
		path, err := resourcePath(d)
		if err != nil {
			return err
		}
		body, err := d.MarshalJSON()
		if err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodPatch, k.URL+path+"?fieldManager=e2e&force=true", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/apply-patch+yaml")
		// CRDs take a moment to be served after they are created.
		var resp *http.Response
		for i := 0; i < 50; i++ {
			resp, err = k.do(req)
			if err == nil && resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/apis/argoproj.io") {
				resp.Body.Close()
				time.Sleep(200 * time.Millisecond)
				req.Body = io.NopCloser(bytes.NewReader(body))
				continue
			}
			break
		}
		if err != nil {
			return err
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("apply %s %s: %s: %s", d.GetKind(), d.GetName(), resp.Status, out)
		}
	}
	return nil
}

// Get reads a resource as JSON from the API server (path like /api/v1/namespaces/x/pods).
func (k *Kube) Get(path string, into any) error {
	req, _ := http.NewRequest(http.MethodGet, k.URL+path, nil)
	resp, err := k.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// FakeNode creates the one node kwok runs. Its capacity is far beyond a real node's (110 pods): a
// test binary deploys dozens of apps of 4 pods each into it, and pods that do not fit stay Pending.
func FakeNode(k *Kube) error { return k.Apply(fakeNode) }

const fakeNode = `{"apiVersion":"v1","kind":"Node","metadata":{"name":"kwok-node-0",
"annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0"},
"labels":{"kubernetes.io/hostname":"kwok-node-0","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","type":"kwok"}},
"spec":{},"status":{"allocatable":{"cpu":"1000","memory":"4Ti","pods":"2000"},"capacity":{"cpu":"1000","memory":"4Ti","pods":"2000"},
"nodeInfo":{"architecture":"amd64","operatingSystem":"linux","kubeletVersion":"fake"}}}`

const defaultProject = `apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: default, namespace: argocd}
spec:
  sourceRepos: ["*"]
  destinations: [{server: "*", namespace: "*"}]
  clusterResourceWhitelist: [{group: "*", kind: "*"}]
`

// InstallArgoCD installs what Argo CD's components need before they start: the argocd namespace,
// the CRDs, argocd-cm (reconciliation every 10 s, admin enabled), argocd-secret (the admin
// password, a server key), the other ConfigMaps (RBAC, known hosts, …) and the default project.
func InstallArgoCD(k *Kube, adminPassword string) error {
	if err := k.Apply(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"argocd"}}`); err != nil {
		return err
	}
	docs, err := yamlDocs(argoCDManifests)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		return err
	}
	b64 := func(s string) *yaml.RNode { return yaml.NewStringRNode(base64.StdEncoding.EncodeToString([]byte(s))) }
	for _, d := range docs {
		if d.GetKind() != "CustomResourceDefinition" {
			_ = d.SetNamespace("argocd")
		}
		switch d.GetName() {
		case "argocd-secret":
			d.SetDataMap(nil)
			for k, v := range map[string]string{"admin.password": string(hash), "admin.passwordMtime": time.Now().UTC().Format(time.RFC3339),
				"server.secretkey": randomHex(16)} {
				if err := d.SetMapField(b64(v), "data", k); err != nil {
					return err
				}
			}
		case "argocd-cm":
			// Reconcile often, so that a deploy (or a test) waits seconds for the controller.
			d.SetDataMap(map[string]string{"timeout.reconciliation": "10s", "admin.enabled": "true"})
		}
		s, err := d.String()
		if err != nil {
			return err
		}
		if err := k.Apply(s); err != nil {
			return err
		}
	}
	return k.Apply(defaultProject)
}

// InstallRollouts installs Argo Rollouts' CRDs, which its controller and the overlays' Rollouts
// (kubernetes/components) need before either starts.
func InstallRollouts(k *Kube) error {
	if err := k.Apply(rolloutsCRDs); err != nil {
		return fmt.Errorf("argo rollouts CRDs: %w", err)
	}
	return nil
}

// AddRepository registers a git repository and its credentials with Argo CD.
func (k *Kube) AddRepository(url, user, password string) error {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return k.Apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"repo-%s","namespace":"argocd",
"labels":{"argocd.argoproj.io/secret-type":"repository"}},"data":{"type":%q,"url":%q,"username":%q,"password":%q}}`,
		randomHex(4), b64("git"), b64(url), b64(user), b64(password)))
}

// volumes makes the static volumes, pre-bound to the StatefulSets' claims in ns (no storage
// provisioner here).
func (k *Kube) volumes(ns string) error {
	for _, pv := range []struct{ claim, size string }{{"mongo-data-mongodb-0", "5Gi"}, {"redis-data-redis-0", "1Gi"}} {
		if err := k.Apply(fmt.Sprintf(`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"%s-%s"},
"spec":{"capacity":{"storage":%q},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/tmp/%s"},
"claimRef":{"namespace":%q,"name":%q}}}`, ns, pv.claim, pv.size, ns, ns, pv.claim)); err != nil {
			return err
		}
	}
	return nil
}

// CreateApps creates the Applications of the manifests in dir, each tracking repoURL, and the
// static volumes of their namespaces; it returns their names.
func (k *Kube) CreateApps(dir, repoURL string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sandbox: applications: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		app, err := yaml.Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s: %w", e.Name(), err)
		}
		if app.GetKind() != "Application" {
			continue
		}
		if err := app.PipeE(yaml.Lookup("spec", "source"), yaml.SetField("repoURL", yaml.NewStringRNode(repoURL))); err != nil {
			return nil, fmt.Errorf("sandbox: %s: %w", e.Name(), err)
		}
		ns, err := app.Pipe(yaml.Lookup("spec", "destination", "namespace"))
		if err != nil || ns == nil {
			return nil, fmt.Errorf("sandbox: %s: no destination namespace", e.Name())
		}
		if err := k.volumes(yaml.GetValue(ns)); err != nil {
			return nil, err
		}
		s, err := app.String()
		if err != nil {
			return nil, err
		}
		if err := k.Apply(s); err != nil {
			return nil, err
		}
		names = append(names, app.GetName())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("sandbox: no Application in %s", dir)
	}
	sort.Strings(names)
	return names, nil
}

// BootstrapConfig says what Bootstrap sets up.
type BootstrapConfig struct {
	// AdminPassword is Argo CD's admin password.
	AdminPassword string
	// RepoURL is the GitOps repository the applications track, GitUser and GitPassword its login.
	RepoURL, GitUser, GitPassword string
	// Apps is the directory of Application manifests (kubernetes/argocd).
	Apps string
	// Wait bounds the wait for the API server.
	Wait time.Duration
}

// Bootstrap prepares a fresh cluster for the sandbox before Argo CD's components start: kwok's node,
// Argo CD's CRDs and configuration (InstallArgoCD, as the host harness installs them), Argo
// Rollouts' CRDs, the
// repository and its login, and the applications of cfg.Apps tracking it. It returns their names.
func Bootstrap(ctx context.Context, k *Kube, cfg BootstrapConfig) ([]string, error) {
	if cfg.Wait == 0 {
		cfg.Wait = 2 * time.Minute
	}
	if err := k.WaitReady(ctx, cfg.Wait); err != nil {
		return nil, fmt.Errorf("sandbox bootstrap: %w", err)
	}
	if err := FakeNode(k); err != nil {
		return nil, fmt.Errorf("sandbox bootstrap: node: %w", err)
	}
	if err := InstallArgoCD(k, cfg.AdminPassword); err != nil {
		return nil, fmt.Errorf("sandbox bootstrap: Argo CD: %w", err)
	}
	if err := InstallRollouts(k); err != nil {
		return nil, fmt.Errorf("sandbox bootstrap: %w", err)
	}
	if err := k.AddRepository(cfg.RepoURL, cfg.GitUser, cfg.GitPassword); err != nil {
		return nil, fmt.Errorf("sandbox bootstrap: repository: %w", err)
	}
	apps, err := k.CreateApps(cfg.Apps, cfg.RepoURL)
	if err != nil {
		return nil, fmt.Errorf("sandbox bootstrap: %w", err)
	}
	return apps, nil
}

// insecureTLS is the TLS of the sandbox's own local servers: not verified.
func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }
