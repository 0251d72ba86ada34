package manifest

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

var (
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestPattern = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	// namePattern is the distribution reference grammar's repository name, anchored.
	namePattern = regexp.MustCompile(`^` + reference.NameRegexp.String() + `$`)
)

// Update is one requested image change. Name selects the images to change: a repository
// ("ghcr.io/acme/wanderlust-backend") or, without a slash, the last element of one
// ("wanderlust-backend"). At least one of Tag and Digest is set; the result references exactly what
// is set (a tag alone drops an old digest, a digest alone drops an old tag).
type Update struct {
	Name    string
	NewName string // optional: a new repository for the matched images
	Tag     string
	Digest  string
}

// ParseUpdate parses "name=tag", "name=sha256:…" or "name=tag@sha256:…" and validates it.
func ParseUpdate(s string) (Update, error) {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" || value == "" {
		return Update{}, fmt.Errorf("image update %q: want name=tag, name=sha256:<hex> or name=tag@sha256:<hex>", s)
	}
	u := Update{Name: strings.TrimSpace(name)}
	value = strings.TrimSpace(value)
	if tag, digest, ok := strings.Cut(value, "@"); ok {
		u.Tag, u.Digest = tag, digest
	} else if strings.HasPrefix(value, "sha256:") {
		u.Digest = value
	} else {
		u.Tag = value
	}
	if err := u.Validate(); err != nil {
		return Update{}, err
	}
	return u, nil
}

// Validate checks the update against the OCI tag, digest and distribution reference grammars.
func (u Update) Validate() error {
	if !namePattern.MatchString(u.Name) || len(u.Name) > reference.NameTotalLengthMax {
		return fmt.Errorf("image %q: not a valid repository name", u.Name)
	}
	if u.NewName != "" && !namePattern.MatchString(u.NewName) {
		return fmt.Errorf("image %q: new name %q is not a valid repository name", u.Name, u.NewName)
	}
	if u.Tag == "" && u.Digest == "" {
		return fmt.Errorf("image %q: a tag or a digest is required", u.Name)
	}
	if u.Tag != "" && !tagPattern.MatchString(u.Tag) {
		return fmt.Errorf("image %q: tag %q does not match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", u.Name, u.Tag)
	}
	if u.Digest != "" && !digestPattern.MatchString(u.Digest) {
		return fmt.Errorf("image %q: digest %q is not sha256: followed by 64 lowercase hex digits", u.Name, u.Digest)
	}
	return nil
}

// String renders the update as name=tag@digest.
func (u Update) String() string {
	return u.Name + "=" + u.Ref()
}

// Ref is the tag/digest part of the update: "v1", "sha256:…" or "v1@sha256:…".
func (u Update) Ref() string {
	return imageRef{Tag: u.Tag, Digest: u.Digest}.version()
}

// Matches reports whether repository repo (as written in a manifest) is selected by the update.
func (u Update) Matches(repo string) bool { return u.matches(repo) }

// matches reports whether repository repo (as written in a manifest) is selected by the update.
func (u Update) matches(repo string) bool {
	if !strings.Contains(u.Name, "/") {
		return LastElem(repo) == u.Name
	}
	return normalize(repo) == normalize(u.Name)
}

// LastElem is an image repository's last path element, its short name ("wanderlust-backend").
func LastElem(repo string) string {
	return repo[strings.LastIndex(repo, "/")+1:]
}

// normalize expands Docker Hub shorthands so that "nginx" and "docker.io/library/nginx" compare equal.
func normalize(repo string) string {
	if n, err := reference.ParseNormalizedNamed(repo); err == nil {
		return n.Name()
	}
	return repo
}

// imageRef is a parsed "repo[:tag][@digest]" as written in a workload manifest.
type imageRef struct {
	Repo, Tag, Digest string
}

func parseImage(s string) (imageRef, error) {
	r := imageRef{Repo: s}
	if i := strings.Index(r.Repo, "@"); i >= 0 {
		r.Repo, r.Digest = r.Repo[:i], r.Repo[i+1:]
	}
	// A colon after the last slash separates the tag (a colon before it belongs to a registry port).
	if i := strings.LastIndex(r.Repo, ":"); i > strings.LastIndex(r.Repo, "/") {
		r.Repo, r.Tag = r.Repo[:i], r.Repo[i+1:]
	}
	if !namePattern.MatchString(r.Repo) {
		return r, fmt.Errorf("%q is not an image reference", s)
	}
	return r, nil
}

func (r imageRef) String() string {
	if v := r.version(); v != "" && r.Tag == "" {
		return r.Repo + "@" + r.Digest
	} else if v != "" {
		return r.Repo + ":" + v
	}
	return r.Repo
}

// version is the tag/digest part: "v1", "sha256:…" or "v1@sha256:…".
func (r imageRef) version() string {
	switch {
	case r.Tag != "" && r.Digest != "":
		return r.Tag + "@" + r.Digest
	case r.Digest != "":
		return r.Digest
	}
	return r.Tag
}
