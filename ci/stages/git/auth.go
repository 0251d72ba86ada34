package git

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Auth holds credentials for the remote. They are used in memory only: never written into the URL, a
// log line, an error or a commit.
type Auth struct {
	// Username for HTTPS basic auth with Token; default "x-access-token", which GitHub, GitLab and
	// Gitea accept for tokens.
	Username string
	// Token (or password) for HTTPS.
	Token string
	// SSHPrivateKey (PEM) for ssh:// and user@host:path URLs, with its optional passphrase.
	SSHPrivateKey []byte
	SSHPassphrase string
	// SSHKnownHosts (known_hosts format) pins the server's host key; required with SSH.
	SSHKnownHosts []byte
}

// secrets lists the values that must never be shown.
func (a Auth) secrets() []string {
	var s []string
	for _, v := range []string{a.Token, a.SSHPassphrase, string(a.SSHPrivateKey)} {
		if len(v) >= 4 {
			s = append(s, v)
		}
	}
	return s
}

// method validates the URL and builds the go-git auth method for it.
func (a Auth) method(rawURL string) (transport.AuthMethod, error) {
	if rawURL == "" {
		return nil, permanent(errors.New("a repository URL is required"))
	}
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		// The parser's error quotes the URL, which may carry a token in a malformed host: never echo it.
		return nil, permanent(errors.New("the repository URL does not parse (not shown: it may carry a secret); check --repo"))
	}
	if ep.Password != "" || (strings.HasPrefix(ep.Protocol, "http") && ep.User != "") {
		return nil, permanent(errors.New("the repository URL must not carry credentials; pass the token separately"))
	}
	switch ep.Protocol {
	case "http", "https":
		if a.Token == "" {
			return nil, nil
		}
		user := a.Username
		if user == "" {
			user = "x-access-token"
		}
		return &githttp.BasicAuth{Username: user, Password: a.Token}, nil
	case "ssh":
		if len(a.SSHPrivateKey) == 0 {
			return nil, permanent(errors.New("an SSH URL needs an SSH private key"))
		}
		if len(a.SSHKnownHosts) == 0 {
			return nil, permanent(errors.New("an SSH URL needs known_hosts content to verify the server"))
		}
		keys, err := gitssh.NewPublicKeys(ep.User, a.SSHPrivateKey, a.SSHPassphrase)
		if err != nil {
			return nil, permanent(errors.New("the SSH private key cannot be read (wrong format or passphrase)"))
		}
		cb, err := hostKeyCallback(a.SSHKnownHosts)
		if err != nil {
			return nil, permanent(err)
		}
		keys.HostKeyCallback = cb
		return keys, nil
	case "file":
		return nil, nil
	}
	return nil, permanent(fmt.Errorf("unsupported repository URL scheme %q", ep.Protocol))
}

// hostKeyCallback verifies host keys against known_hosts content (knownhosts reads files only).
func hostKeyCallback(content []byte) (ssh.HostKeyCallback, error) {
	f, err := os.CreateTemp("", "known_hosts")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(content); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	return func(host string, remote net.Addr, key ssh.PublicKey) error { return cb(host, remote, key) }, nil
}

// permanentError marks failures that retrying cannot fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p) ||
		errors.Is(err, transport.ErrAuthenticationRequired) ||
		errors.Is(err, transport.ErrAuthorizationFailed) ||
		errors.Is(err, transport.ErrRepositoryNotFound) ||
		errors.Is(err, transport.ErrEmptyRemoteRepository) ||
		errors.Is(err, transport.ErrInvalidAuthMethod)
}

// describe turns go-git's terse errors into ones that say what to check.
func describe(err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return fmt.Errorf("authentication failed: the remote refused the credentials (check the token and its user): %w", err)
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("authorization failed: the credentials may not access this repository: %w", err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("repository not found (or not visible with these credentials): %w", err)
	}
	return err
}

// userinfo matches the credentials part of a URL ("https://user:token@host").
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s"']+@`)

// redact removes every secret from err's text (defence in depth: none should be there).
func redact(err error, a Auth) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := userinfo.ReplaceAllString(msg, "$1***@")
	for _, s := range a.secrets() {
		clean = strings.ReplaceAll(clean, s, "***")
	}
	if clean == msg {
		return err
	}
	return redactedError{msg: clean, err: err}
}

// redactedError keeps the chain for errors.Is/As but shows only the cleaned text.
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }
