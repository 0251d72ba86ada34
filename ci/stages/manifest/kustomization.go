package manifest

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// Field names of a kustomize `images:` entry.
const (
	fName    = "name"
	fNewName = "newName"
	fNewTag  = "newTag"
	fDigest  = "digest"
)

// kustomization sets the `images:` entries of the kustomization file kpath, adding an entry for an
// image that its resources use but that it does not list yet.
func (e *editor) kustomization(kpath string, updates []Update) error {
	s, err := e.load(kpath)
	if err != nil {
		return err
	}
	docs, err := s.documents()
	if err != nil {
		return err
	}
	if len(docs) != 1 || docs[0].YNode().Kind != yaml.MappingNode {
		return fmt.Errorf("%s: not a kustomization (want one YAML mapping)", kpath)
	}
	root := docs[0]
	images, err := root.Pipe(yaml.Lookup("images"))
	if err != nil {
		return fmt.Errorf("%s: %w", kpath, err)
	}
	if images != nil && images.YNode().Kind != yaml.SequenceNode {
		return fmt.Errorf("%s: images is not a list", kpath)
	}

	var missing []Update
	for _, u := range updates {
		matched := false
		if images != nil {
			for i, item := range images.Content() {
				entry := yaml.NewRNode(item)
				name := fieldValue(entry, fName)
				if item.Kind != yaml.MappingNode || name == "" || !u.matches(name) {
					continue
				}
				if item.Style&yaml.FlowStyle != 0 {
					return fmt.Errorf("%s: images[%d] is written in flow style; write it as a block mapping", kpath, i)
				}
				matched = true
				if err := e.setEntry(s, kpath, entry, u); err != nil {
					return err
				}
			}
		}
		if !matched {
			missing = append(missing, u)
		}
	}
	if len(missing) == 0 {
		return nil
	}

	used := map[string]bool{}
	if err := e.usedImages(kpath, map[string]bool{}, used); err != nil {
		return err
	}
	var added []string
	for _, u := range missing {
		var repos []string
		for repo := range used {
			if u.matches(repo) {
				repos = append(repos, repo)
			}
		}
		sort.Strings(repos)
		switch {
		case len(repos) == 0:
			return e.notFound(u)
		case len(repos) > 1:
			return fmt.Errorf("image %q is ambiguous in %s: it matches %s; name the full repository", u.Name, kpath, strings.Join(repos, ", "))
		}
		entry := imagesEntry{Name: repos[0], NewName: u.NewName, NewTag: u.Tag, Digest: u.Digest}
		e.edits = append(e.edits, Edit{Image: u.Name, File: kpath, Field: "images[" + repos[0] + "]", To: entry.value()})
		added = append(added, entry.render())
	}
	return appendEntries(s, kpath, images, added)
}

// imagesEntry is the content of one kustomize images entry.
type imagesEntry struct{ Name, NewName, NewTag, Digest string }

// value renders the entry's target for comparisons and summaries: "[newName]:tag@digest".
func (ie imagesEntry) value() string {
	v := ie.NewName
	if ie.NewTag != "" {
		v += ":" + ie.NewTag
	}
	if ie.Digest != "" {
		v += "@" + ie.Digest
	}
	return strings.TrimPrefix(v, ":")
}

// render writes the entry as block YAML lines, relative to the item's dash (no indentation).
func (ie imagesEntry) render() string {
	lines := []string{"- " + fName + ": " + scalar(ie.Name)}
	for _, kv := range [][2]string{{fNewName, ie.NewName}, {fNewTag, ie.NewTag}, {fDigest, ie.Digest}} {
		if kv[1] != "" {
			lines = append(lines, "  "+kv[0]+": "+scalar(kv[1]))
		}
	}
	return strings.Join(lines, "\n")
}

func scalar(v string) string {
	if plainSafe(v) {
		return v
	}
	return doubleQuote(v)
}

func fieldValue(m *yaml.RNode, key string) string {
	if f := m.Field(key); f != nil && f.Value.YNode().Kind == yaml.ScalarNode {
		return f.Value.YNode().Value
	}
	return ""
}

// setEntry makes one images entry reference exactly what u asks for.
func (e *editor) setEntry(s *source, kpath string, entry *yaml.RNode, u Update) error {
	cur := imagesEntry{
		Name:    fieldValue(entry, fName),
		NewName: fieldValue(entry, fNewName),
		NewTag:  fieldValue(entry, fNewTag),
		Digest:  fieldValue(entry, fDigest),
	}
	want := cur
	if u.NewName != "" {
		want.NewName = u.NewName
		if u.NewName == cur.Name {
			want.NewName = "" // the image keeps its name: no newName
		}
	}
	want.NewTag, want.Digest = u.Tag, u.Digest
	edit := Edit{Image: u.Name, File: kpath, Field: "images[" + cur.Name + "]", From: cur.value(), To: want.value()}
	e.edits = append(e.edits, edit)
	if !edit.Changed() {
		return nil
	}

	// The column of the entry's keys gives the indentation of a key that has to be added.
	indent := strings.Repeat(" ", entry.YNode().Content[0].Column-1)
	var add []string
	for _, kv := range [][3]string{{fNewName, cur.NewName, want.NewName}, {fNewTag, cur.NewTag, want.NewTag}, {fDigest, cur.Digest, want.Digest}} {
		key, from, to := kv[0], kv[1], kv[2]
		if from == to {
			continue
		}
		f := entry.Field(key)
		switch {
		case f != nil && to == "":
			if err := s.deleteLine(f.Key.YNode(), f.Value.YNode()); err != nil {
				return err
			}
		case f != nil:
			if err := s.setScalar(f.Value.YNode(), to); err != nil {
				return err
			}
		default:
			add = append(add, indent+key+": "+scalar(to)+"\n")
		}
	}
	if len(add) > 0 {
		s.insertAfterLine(entry.YNode(), strings.Join(add, ""))
	}
	return nil
}

// appendEntries adds rendered entries to the images list, creating the list if there is none.
func appendEntries(s *source, kpath string, images *yaml.RNode, entries []string) error {
	indentLines := func(prefix string) string {
		var b strings.Builder
		for _, entry := range entries {
			for _, l := range strings.Split(entry, "\n") {
				b.WriteString(prefix + l + "\n")
			}
		}
		return b.String()
	}
	if images == nil {
		s.appendText("images:\n" + indentLines("  "))
		return nil
	}
	items := images.Content()
	if len(items) == 0 || images.YNode().Style&yaml.FlowStyle != 0 {
		if len(items) > 0 {
			return fmt.Errorf("%s: images is a flow-style list; write it as a block list", kpath)
		}
		// "images: []": replace the empty flow list with a block list.
		start := s.offset(images.YNode())
		if start < 0 || !strings.HasPrefix(string(s.data[start:]), "[]") {
			return fmt.Errorf("%s:%d: cannot edit the images list in place", kpath, images.YNode().Line)
		}
		s.edits = append(s.edits, splice{start, start + 2, "\n" + strings.TrimSuffix(indentLines("  "), "\n")})
		return nil
	}
	// Line up with the existing items' dashes.
	first := items[0]
	lineStart := s.lines[first.Line-1]
	itemOff := s.offset(first)
	dash := strings.LastIndex(string(s.data[lineStart:itemOff]), "-")
	if dash < 0 {
		return fmt.Errorf("%s:%d: cannot find the images list's indentation", kpath, first.Line)
	}
	s.insertAfterLine(images.YNode(), indentLines(strings.Repeat(" ", dash)))
	return nil
}

// Image is an image entry of a kustomization: the image it replaces and what it becomes.
type Image struct {
	Name, NewName, NewTag, Digest string
}

// Ref is the reference the entry deploys, e.g. "repo:tag@sha256:…".
func (i Image) Ref() string {
	repo := i.Name
	if i.NewName != "" {
		repo = i.NewName
	}
	return imageRef{Repo: repo, Tag: i.NewTag, Digest: i.Digest}.String()
}

// Update is the update that makes an images entry named i.Name exactly i: its newName (none when
// i has none), tag and digest.
func (i Image) Update() Update {
	newName := i.NewName
	if newName == "" {
		newName = i.Name // setEntry drops a newName equal to the name
	}
	return Update{Name: i.Name, NewName: newName, Tag: i.NewTag, Digest: i.Digest}
}

// Images reads the `images:` of the kustomization in dir (for promotion: what an environment runs).
func Images(fsys fs.FS, dir string) ([]Image, error) {
	p, err := cleanPath(dir)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	k := findKustomization(fsys, p)
	if k == "" {
		return nil, fmt.Errorf("manifest: no kustomization in %s", dir)
	}
	b, err := fs.ReadFile(fsys, k)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	docs, err := newSource(k, b).documents()
	if err != nil || len(docs) != 1 {
		return nil, fmt.Errorf("manifest: %s is not a kustomization: %v", k, err)
	}
	seq, err := docs[0].Pipe(yaml.Lookup("images"))
	if err != nil || seq == nil {
		return nil, err
	}
	var out []Image
	for _, item := range seq.Content() {
		e := yaml.NewRNode(item)
		out = append(out, Image{Name: fieldValue(e, fName), NewName: fieldValue(e, fNewName), NewTag: fieldValue(e, fNewTag), Digest: fieldValue(e, fDigest)})
	}
	return out, nil
}
