// Package gitserver runs the sandbox's smart-HTTP git remote (`git http-backend` behind net/http/cgi,
// with HTTP basic auth checked by the server) on 127.0.0.1 for tests and benchmarks, counting and
// recording requests and letting a test hold one back.
package gitserver

import (
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"wanderlust.dev/pipeline/ci/sandbox"
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
	drop     atomic.Pointer[func(*http.Request) bool]
	requests atomic.Int64
	mu       sync.Mutex
	seen     []string // request URIs and Authorization-free headers, for leak checks
}

// Start starts a server whose repositories live under root (created if missing).
func Start(root, user, password string) (*Server, error) {
	backend, err := sandbox.GitHandler(root, user, password)
	if err != nil {
		return nil, err
	}
	s := &Server{Root: root, User: user, Password: password}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		s.seen = append(s.seen, r.Method+" "+r.RequestURI)
		s.mu.Unlock()
		if h := s.hook.Load(); h != nil {
			if u, p, ok := r.BasicAuth(); ok && u == s.User && p == s.Password {
				(*h)(r)
			}
		}
		if d := s.drop.Load(); d != nil && (*d)(r) {
			// Served, then the reply is lost: the connection closes without a response.
			backend.ServeHTTP(httptest.NewRecorder(), r)
			panic(http.ErrAbortHandler)
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

// DropReply makes the server serve every request that drop selects and then close the connection
// without replying (nil stops it): a push that the remote applied but whose acknowledgement was lost.
func (s *Server) DropReply(drop func(*http.Request) bool) {
	if drop == nil {
		s.drop.Store(nil)
		return
	}
	s.drop.Store(&drop)
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
	return sandbox.InitBare(s.Root, name, branch, !s.NoPartialClone)
}

// CreateRepo makes a bare repository whose branch holds one commit with the files of tree
// (every regular file, at its path in tree).
func (s *Server) CreateRepo(name, branch string, tree fs.FS) error {
	return sandbox.CreateRepo(s.Root, name, branch, tree, !s.NoPartialClone)
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
func Git(dir string, args ...string) error { return sandbox.Git(dir, args...) }

// Output runs git in dir and returns its standard output.
func Output(dir string, args ...string) (string, error) { return sandbox.GitOutput(dir, args...) }
