package git

import (
	"net/url"
	"strings"
)

// Short is a commit SHA as logs, reports and errors show it: its first 12 characters.
func Short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// SameRepo reports whether two repository URLs name the same repository: compared without scheme,
// user-info, case, a final slash or ".git", and with scp-like "host:path" read as "host/path" — as
// Argo CD matches an application's repoURL, and as provenance names its source.
func SameRepo(a, b string) bool { return normRepo(a) == normRepo(b) }

func normRepo(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	if at := strings.Index(s, "@"); at >= 0 && !strings.Contains(s[:at], "/") {
		s = s[at+1:]
	}
	s = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git"), "/")
	return strings.Replace(s, ":", "/", 1)
}

// HasCredentials reports whether a repository URL carries a password or token: user-info with a
// password in a URL (https://user:token@host/…), any user-info but git's conventional "git@" user,
// or a URL that does not parse (it may hide one; never echo it).
func HasCredentials(repo string) bool {
	if strings.Contains(repo, "://") {
		u, err := url.Parse(repo)
		if err != nil {
			return true
		}
		if u.User == nil {
			return false
		}
		_, hasPassword := u.User.Password()
		return hasPassword || u.User.Username() != "git"
	}
	// scp-like: user@host:path
	if at := strings.Index(repo, "@"); at >= 0 && !strings.Contains(repo[:at], "/") {
		return repo[:at] != "git"
	}
	return false
}
