// Package gitserver runs a real smart-HTTP git remote for tests and benchmarks: `git http-backend`
// behind net/http/cgi, with HTTP basic auth checked by the server, on 127.0.0.1.
package gitserver

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// Server is a running git remote.
type Server struct {
	// URL is the base URL; a repository named n is at URL + "/" + n + ".git".
	URL string
	// Root holds the bare repositories.
	Root string
	// User and Password are the basic-auth credentials the server accepts.
	User, Password string
	// NoPartialClone turns off, for repositories created afterwards, what GitHub and GitLab offer:
	// blob-less (filtered) fetches and fetching any reachable object by hash.
	NoPartialClone bool

	srv      *httptest.Server
	hook     atomic.Pointer[func(*http.Request)]
	requests atomic.Int64
	mu       sync.Mutex
	seen     []string // request URIs and Authorization-free headers, for leak checks
}

// Start starts a server whose repositories live under root (created if missing).
func Start(root, user, password string) (*Server, error) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("gitserver: git is not installed: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	s := &Server{Root: root, User: user, Password: password}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + root},
		// git's own complaints (e.g. "cannot lock ref" when pushes race) reach clients in the protocol.
		Stderr: io.Discard,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.RequestURI)
		s.mu.Unlock()
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.User)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if h := s.hook.Load(); h != nil {
			(*h)(r)
		}
		backend.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	return s, nil
}

// SetHook installs a function called on every authenticated request before git serves it (nil removes
// it); tests use it to hold a request back and so order concurrent pushes.
func (s *Server) SetHook(h func(*http.Request)) {
	if h == nil {
		s.hook.Store(nil)
		return
	}
	s.hook.Store(&h)
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Requests is the number of HTTP requests served so far.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Seen returns the request lines served so far (method and URI).
func (s *Server) Seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// RepoURL is the clone URL of repository name.
func (s *Server) RepoURL(name string) string { return s.URL + "/" + name + ".git" }

// GitDir is the bare repository's directory.
func (s *Server) GitDir(name string) string { return filepath.Join(s.Root, name+".git") }

// InitBare makes an empty bare repository that accepts pushes over HTTP and returns its directory.
func (s *Server) InitBare(name, branch string) (string, error) {
	dir := s.GitDir(name)
	if err := Git("", "init", "-q", "--bare", "-b", branch, dir); err != nil {
		return "", err
	}
	partial := fmt.Sprint(!s.NoPartialClone)
	for _, kv := range [][2]string{{"http.receivepack", "true"}, {"uploadpack.allowFilter", partial}, {"uploadpack.allowAnySHA1InWant", partial}} {
		if err := Git(dir, "config", kv[0], kv[1]); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// CreateRepo makes a bare repository whose branch holds one commit with the files of tree
// (every regular file, at its path in tree).
func (s *Server) CreateRepo(name, branch string, tree fs.FS) error {
	dir, err := s.InitBare(name, branch)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "gitserver-seed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(work, tree); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", branch},
		{"add", "-A"},
		{"commit", "-q", "-m", "seed"},
		{"push", "-q", dir, branch},
	} {
		if err := Git(work, args...); err != nil {
			return err
		}
	}
	return nil
}

// Head returns the commit the branch points at.
func (s *Server) Head(name, branch string) (string, error) {
	out, err := Output(s.GitDir(name), "rev-parse", "refs/heads/"+branch)
	return strings.TrimSpace(out), err
}

// Show returns the content of path at rev.
func (s *Server) Show(name, rev, path string) (string, error) {
	return Output(s.GitDir(name), "show", rev+":"+path)
}

// CommitCount counts the commits reachable from the branch.
func (s *Server) CommitCount(name, branch string) (int, error) {
	out, err := Output(s.GitDir(name), "rev-list", "--count", "refs/heads/"+branch)
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscan(out, &n)
	return n, err
}

// ClosedURL returns an http URL on which nothing listens: a remote that is down.
func ClosedURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/repo.git", nil
}

// Git runs git in dir with a fixed identity and no user or system configuration.
func Git(dir string, args ...string) error {
	_, err := Output(dir, args...)
	return err
}

// Output runs git in dir and returns its standard output.
func Output(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Seeder", "GIT_AUTHOR_EMAIL=seeder@example.test",
		"GIT_COMMITTER_NAME=Seeder", "GIT_COMMITTER_EMAIL=seeder@example.test",
	)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
