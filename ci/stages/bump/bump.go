// Package bump is the GitOps promotion step: set image tags/digests in an environment's manifests
// (stage manifest) and commit and push the change (stage git), with a templated commit message.
package bump

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"text/template"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
)

// DefaultMessage is the default commit message template. Its data is a MessageData.
const DefaultMessage = `deploy({{.Target}}): {{range $i, $c := .Changes}}{{if $i}}, {{end}}{{$c.Image}} {{$c.To}}{{end}}

{{range .Changes}}- {{.Image}}: {{.From}} → {{.To}} ({{.File}})
{{end}}`

// Options configure one bump.
type Options struct {
	// Git says where to commit and push.
	Git git.Options
	// Env selects kubernetes/overlays/<Env>; Path selects any directory or file instead. One is required;
	// with both, Path is edited and Env names the target in the message.
	Env, Path string
	// Updates are the image changes.
	Updates []manifest.Update
	// Message is a text/template for the commit message (default DefaultMessage).
	Message string
	// SourceCommit, when set, is added as a "Source-Commit:" trailer.
	SourceCommit string
	// Trailers are added to the message's trailer paragraph (after Source-Commit), in order.
	Trailers [][2]string
	// SkipCI marks the commit "[skip ci]" (in its subject, where GitHub, GitLab and most CI systems
	// look), so that a push to the application's own repository does not start the pipeline again.
	SkipCI bool
}

// MessageData is what the message template sees.
type MessageData struct {
	Target       string // the environment, or the path
	Path         string
	SourceCommit string
	Changes      []Change
}

// Change is one changed image value, for messages and reports.
type Change struct {
	Image, File, From, To string
}

// Result is the outcome of a bump.
type Result struct {
	// SHA is the pushed commit (or the branch head when unchanged, or the unpushed commit of a dry run).
	SHA string
	// Changed reports whether a commit was made; Pushed whether it reached the remote.
	Changed, Pushed bool
	// Summary has one line per changed image, or "unchanged".
	Summary string
	// Diff is the commit's unified diff.
	Diff string
	// Changes are the changed values.
	Changes []Change
	// Attempts counts the pushes tried.
	Attempts int
	// Message is the commit message.
	Message string
}

var (
	envPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	shaPattern = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	trailerKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)
)

// Run performs the bump. Inputs are validated before anything is fetched; a bad one changes nothing.
func Run(ctx context.Context, o Options) (*Result, error) {
	target, mopts, tmpl, err := o.validate()
	if err != nil {
		return nil, fmt.Errorf("bump: %w", err)
	}
	change := func(head fs.FS) (*git.Patch, error) {
		res, err := manifest.Apply(head, mopts)
		if err != nil {
			return nil, err
		}
		p := &git.Patch{Files: res.Files, Detail: res}
		data := MessageData{Target: target, Path: mopts.Path, SourceCommit: o.SourceCommit}
		for _, e := range res.Edits {
			p.Values = append(p.Values, git.Value{Key: e.Key(), From: e.From, To: e.To})
			if e.Changed() {
				data.Changes = append(data.Changes, Change{Image: e.Image, File: e.File, From: manifest.ShortValue(e.From), To: manifest.ShortValue(e.To)})
			}
		}
		if res.Changed() {
			if p.Message, err = render(tmpl, data); err != nil {
				return nil, err
			}
			p.Message = withTrailers(p.Message, o.Trailers)
			if o.SkipCI && !strings.Contains(p.Message, "[skip ci]") {
				subject, rest, _ := strings.Cut(p.Message, "\n")
				p.Message = subject + " [skip ci]\n" + rest
			}
		}
		return p, nil
	}
	gopts := o.Git.PrefetchFor(mopts.Path)
	gr, err := git.Commit(ctx, gopts, change)
	if err != nil {
		return nil, fmt.Errorf("bump %s: %w", target, err)
	}
	out := &Result{SHA: gr.SHA, Changed: gr.Changed, Pushed: gr.Pushed, Diff: gr.Diff, Attempts: gr.Attempts, Message: gr.Message, Summary: "unchanged"}
	if res, ok := gr.Detail.(*manifest.Result); ok && gr.Changed {
		out.Summary = res.Summary()
		for _, e := range res.Edits {
			if e.Changed() {
				out.Changes = append(out.Changes, Change{Image: e.Image, File: e.File, From: e.From, To: e.To})
			}
		}
	}
	return out, nil
}

// CheckEnv checks an environment name (kubernetes/overlays/<env>).
func CheckEnv(env string) error {
	if !envPattern.MatchString(env) {
		return fmt.Errorf("environment %q: want lowercase letters, digits and dashes", env)
	}
	return nil
}

// Validate checks the options (environment, path, updates, source commit, template and the git
// options) without any network call.
func (o Options) Validate() error {
	if _, _, _, err := o.validate(); err != nil {
		return fmt.Errorf("bump: %w", err)
	}
	return o.Git.Validate()
}

// Dir is the directory the bump edits: the path, or the environment's overlay.
func (o Options) Dir() string {
	if o.Path != "" {
		return o.Path
	}
	return manifest.EnvPath(o.Env)
}

func (o Options) validate() (string, manifest.Options, *template.Template, error) {
	mopts := manifest.Options{Path: o.Path, Updates: o.Updates}
	target := o.Env
	switch {
	case o.Env != "" && !envPattern.MatchString(o.Env):
		return "", mopts, nil, fmt.Errorf("environment %q: want lowercase letters, digits and dashes", o.Env)
	case o.Path == "" && o.Env == "":
		return "", mopts, nil, fmt.Errorf("an environment or a path is required")
	case o.Path == "":
		mopts.Path = manifest.EnvPath(o.Env)
	case target == "":
		target = o.Path
	}
	if err := manifest.CheckPath(mopts.Path); err != nil {
		return "", mopts, nil, err
	}
	if len(o.Updates) == 0 {
		return "", mopts, nil, fmt.Errorf("no image updates given")
	}
	for _, u := range o.Updates {
		if err := u.Validate(); err != nil {
			return "", mopts, nil, err
		}
	}
	for _, t := range o.Trailers {
		if !trailerKey.MatchString(t[0]) || strings.ContainsAny(t[1], "\r\n") {
			return "", mopts, nil, fmt.Errorf("trailer %q: want a key of letters, digits and dashes and a one-line value", t[0])
		}
	}
	if o.SourceCommit != "" && !shaPattern.MatchString(o.SourceCommit) {
		return "", mopts, nil, fmt.Errorf("source commit %q is not a hex commit SHA", o.SourceCommit)
	}
	text := o.Message
	if text == "" {
		text = DefaultMessage
	}
	tmpl, err := template.New("message").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", mopts, nil, fmt.Errorf("message template: %w", err)
	}
	// Execute it once on sample data so that a template error surfaces before any network call.
	sample := MessageData{Target: target, Path: mopts.Path, SourceCommit: o.SourceCommit, Changes: []Change{{Image: "image", File: "file", From: "a", To: "b"}}}
	if _, err := render(tmpl, sample); err != nil {
		return "", mopts, nil, err
	}
	return target, mopts, tmpl, nil
}

// withTrailers appends "Key: value" lines to the message's trailer paragraph (a new one if the
// message has none).
func withTrailers(msg string, trailers [][2]string) string {
	if len(trailers) == 0 {
		return msg
	}
	msg = strings.TrimRight(msg, "\n")
	paras := strings.Split(msg, "\n\n")
	last := paras[len(paras)-1]
	isTrailers := len(paras) > 1
	for _, l := range strings.Split(last, "\n") {
		if k, _, ok := strings.Cut(l, ": "); !ok || strings.ContainsAny(k, " \t") {
			isTrailers = false
		}
	}
	if !isTrailers {
		msg += "\n"
	}
	for _, t := range trailers {
		msg += "\n" + t[0] + ": " + t[1]
	}
	return msg + "\n"
}

func render(t *template.Template, d MessageData) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("message template: %w", err)
	}
	msg := strings.TrimSpace(b.String())
	if msg == "" {
		return "", fmt.Errorf("message template: renders an empty message")
	}
	if d.SourceCommit != "" && !strings.Contains(msg, "Source-Commit: "+d.SourceCommit) {
		msg += "\n\nSource-Commit: " + d.SourceCommit
	}
	return msg + "\n", nil
}
