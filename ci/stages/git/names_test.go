package git

import "testing"

func TestSameRepoAndCredentials(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"https://github.com/Acme/GitOps.git", "https://github.com/acme/gitops/", true},
		{"http://github.com/acme/gitops", "https://github.com/acme/gitops", true},
		{"https://x-access-token@github.com/acme/gitops", "https://github.com/acme/gitops", true},
		{"git@github.com:acme/gitops.git", "https://github.com/acme/gitops", true},
		{"https://github.com/acme/gitops", "https://github.com/acme/other", false},
		{"https://github.com/acme/gitops", "https://gitlab.com/acme/gitops", false},
	} {
		if SameRepo(c.a, c.b) != c.same {
			t.Errorf("SameRepo(%q, %q) = %v", c.a, c.b, !c.same)
		}
	}
	for repo, creds := range map[string]bool{
		"https://github.com/acme/app":             false,
		"git@github.com:acme/app.git":             false,
		"ssh://git@github.com/acme/app":           false,
		"https://ci:ghp_token123@github.com/a/b":  true,
		"https://ghp_token123@github.com/a/b":     true,
		"deploy@github.com:acme/app.git":          true,
		"https://ghp_token123@git hub.com%zz/a/b": true,
	} {
		if HasCredentials(repo) != creds {
			t.Errorf("HasCredentials(%q) = %v", repo, !creds)
		}
	}
}
