package sandbox

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GitHandler serves the bare repositories under root over smart HTTP (`git http-backend` behind
// net/http/cgi), answering only requests with the basic-auth user and password.
func GitHandler(root, user, password string) (http.Handler, error) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("sandbox: git is not installed: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + root},
		// git's own complaints (e.g. "cannot lock ref" when pushes race) reach clients in the protocol.
		Stderr: io.Discard,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}), nil
}

// InitBare makes an empty bare repository root/name.git that accepts pushes over HTTP and, with
// partial, offers what GitHub and GitLab offer: blob-less (filtered) fetches and fetching any
// reachable object by hash. It returns the repository's directory.
func InitBare(root, name, branch string, partial bool) (string, error) {
	dir := filepath.Join(root, name+".git")
	if err := Git("", "init", "-q", "--bare", "-b", branch, dir); err != nil {
		return "", err
	}
	p := fmt.Sprint(partial)
	for _, kv := range [][2]string{{"http.receivepack", "true"}, {"uploadpack.allowFilter", p}, {"uploadpack.allowAnySHA1InWant", p}} {
		if err := Git(dir, "config", kv[0], kv[1]); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// CreateRepo makes a bare repository whose branch holds one commit with the files of tree (every
// regular file, at its path in tree).
func CreateRepo(root, name, branch string, tree fs.FS, partial bool) error {
	dir, err := InitBare(root, name, branch, partial)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "sandbox-seed-")
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

// Git runs git in dir with a fixed identity and no user or system configuration.
func Git(dir string, args ...string) error {
	_, err := GitOutput(dir, args...)
	return err
}

// GitOutput runs git in dir and returns its standard output.
func GitOutput(dir string, args ...string) (string, error) {
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
