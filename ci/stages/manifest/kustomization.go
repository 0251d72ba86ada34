package manifest

import (
	"fmt"
	"io/fs"
	"maps"
	"slices"
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
	var images *yaml.RNode
	if f := root.Field("images"); f != nil {
		if err := s.notAliased("images", f.Value.YNode()); err != nil {
			return err
		}
		images = f.Value
	}
	if images != nil && images.YNode().Kind != yaml.SequenceNode {
		return fmt.Errorf("%s: images is not a list", kpath)
	}

	var missing []Update
	for _, u := range updates {
		var matched []*yaml.RNode
		names := map[string]bool{}
		if images != nil {
			for _, item := range images.Content() {
				entry := yaml.NewRNode(item)
				if item.Kind == yaml.AliasNode && item.Alias != nil {
					entry = yaml.NewRNode(item.Alias)
				}
				if entry.YNode().Kind != yaml.MappingNode || !entryMatches(entry, u) {
					continue
				}
				if err := s.notAliased("images entry "+fieldValue(entry, fName), item); err != nil {
					return err
				}
				matched = append(matched, entry)
				names[normalize(fieldValue(entry, fName))] = true
			}
		}
		if len(names) > 1 {
			return fmt.Errorf("image %q is ambiguous in %s: it matches %s; name the full repository", u.Name, kpath, strings.Join(slices.Sorted(maps.Keys(names)), ", "))
		}
		for _, entry := range matched {
			if err := e.setEntry(s, kpath, entry, u); err != nil {
				return err
			}
		}
		if len(matched) == 0 {
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
	var added []imagesEntry
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
		added = append(added, entry)
	}
	return appendEntries(s, kpath, images, added)
}

// entryMatches reports whether an images entry is selected by u: by its name, or by the newName it
// deploys (the user names the image that runs).
func entryMatches(entry *yaml.RNode, u Update) bool {
	name, newName := fieldValue(entry, fName), fieldValue(entry, fNewName)
	return name != "" && (u.matches(name) || (newName != "" && u.matches(newName)))
}

// notAliased refuses to edit what an anchor or alias defines: the edit would land elsewhere, or
// change other places too. It checks n and, for a mapping, its keys and values.
func (s *source) notAliased(what string, n *yaml.Node) error {
	switch {
	case n.Kind == yaml.AliasNode:
		line := n.Line
		if n.Alias != nil {
			line = n.Alias.Line
		}
		return fmt.Errorf("%s:%d: %s is defined through an anchor/alias at line %d; edit it there", s.path, n.Line, what, line)
	case n.Anchor != "":
		return fmt.Errorf("%s:%d: %s is defined through an anchor/alias at line %d (&%s, used elsewhere too); edit it there by hand", s.path, n.Line, what, n.Line, n.Anchor)
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				return fmt.Errorf("%s:%d: %s merges an anchor (<<) at line %d; edit it there", s.path, k.Line, what, v.Line)
			}
			if err := s.notAliased(what+" "+k.Value, v); err != nil {
				return err
			}
		}
	}
	return nil
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

// renderFlow writes the entry as a flow mapping: {name: x, newTag: y}.
func (ie imagesEntry) renderFlow() string {
	parts := []string{fName + ": " + scalar(ie.Name)}
	for _, kv := range [][2]string{{fNewName, ie.NewName}, {fNewTag, ie.NewTag}, {fDigest, ie.Digest}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+": "+scalar(kv[1]))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
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

	flow := entry.YNode().Style&yaml.FlowStyle != 0
	// The column of the entry's keys gives the indentation of a key that has to be added.
	indent := strings.Repeat(" ", entry.YNode().Content[0].Column-1)
	var add []string
	for _, kv := range [][3]string{{fNewName, cur.NewName, want.NewName}, {fNewTag, cur.NewTag, want.NewTag}, {fDigest, cur.Digest, want.Digest}} {
		key, from, to := kv[0], kv[1], kv[2]
		if from == to {
			continue
		}
		f := entry.Field(key)
		var err error
		switch {
		case f != nil && to == "" && flow:
			err = s.deleteFlowPair(entry.YNode(), f.Key.YNode())
		case f != nil && to == "":
			err = s.deleteLine(f.Key.YNode(), f.Value.YNode())
		case f != nil:
			err = s.setScalar(f.Value.YNode(), to)
		case flow:
			add = append(add, ", "+key+": "+scalar(to))
		default:
			add = append(add, indent+key+": "+scalar(to)+"\n")
		}
		if err != nil {
			return err
		}
	}
	switch {
	case len(add) > 0 && flow:
		vals := entry.YNode().Content
		_, end, err := s.scalarExtent(vals[len(vals)-1])
		if err != nil {
			return err
		}
		s.edits = append(s.edits, splice{end, end, strings.Join(add, "")})
	case len(add) > 0:
		s.insertAfterLine(entry.YNode(), strings.Join(add, ""))
	}
	return nil
}

// appendEntries adds entries to the images list, creating the list if there is none, in the list's
// own style.
func appendEntries(s *source, kpath string, images *yaml.RNode, entries []imagesEntry) error {
	indentLines := func(prefix string) string {
		var b strings.Builder
		for _, entry := range entries {
			for _, l := range strings.Split(entry.render(), "\n") {
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
	if len(items) == 0 {
		// "images: []": replace the empty flow list with a block list.
		start := s.offset(images.YNode())
		if start < 0 || !strings.HasPrefix(string(s.data[start:]), "[]") {
			return fmt.Errorf("%s:%d: cannot edit the images list in place", kpath, images.YNode().Line)
		}
		s.edits = append(s.edits, splice{start, start + 2, "\n" + strings.TrimSuffix(indentLines("  "), "\n")})
		return nil
	}
	if images.YNode().Style&yaml.FlowStyle != 0 {
		// A flow list: ", {name: …}" after the last item.
		end, err := s.flowEnd(items[len(items)-1])
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, entry := range entries {
			b.WriteString(", " + entry.renderFlow())
		}
		s.edits = append(s.edits, splice{end, end, b.String()})
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

// ByName indexes images entries by their name.
func ByName(imgs []Image) map[string]Image {
	out := make(map[string]Image, len(imgs))
	for _, i := range imgs {
		out[i.Name] = i
	}
	return out
}

// Images reads the `images:` of the kustomization in dir (for promotion: what an environment runs).
func Images(fsys fs.FS, dir string) ([]Image, error) {
	p, err := cleanPath(dir)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	k, err := findKustomization(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
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

// KustomizationFile is the path of dir's kustomization file ("" when dir has none).
func KustomizationFile(fsys fs.FS, dir string) (string, error) {
	p, err := cleanPath(dir)
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	k, err := findKustomization(fsys, p)
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	return k, nil
}

// RemoveImageEntries removes the `images:` entries named names from the kustomization kpath with
// content data, and nothing else: the lines of each (block-style) entry go, comments and every
// other entry stay. It is what rolling back a deployment that added those entries restores.
func RemoveImageEntries(kpath string, data []byte, names []string) ([]byte, error) {
	s := newSource(kpath, data)
	docs, err := s.documents()
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 || docs[0].YNode().Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: not a kustomization (want one YAML mapping)", kpath)
	}
	f := docs[0].Field("images")
	if f == nil || f.Value.YNode().Kind != yaml.SequenceNode {
		return data, nil
	}
	seq := f.Value.YNode()
	for _, item := range seq.Content {
		if !slices.Contains(names, fieldValue(yaml.NewRNode(item), fName)) {
			continue
		}
		start := s.lines[item.Line-1]
		if seq.Style&yaml.FlowStyle != 0 || strings.TrimSpace(string(s.data[start:s.offset(item)])) != "-" {
			return nil, fmt.Errorf("%s:%d: cannot remove the images entry %s as written; edit it by hand", kpath, item.Line, fieldValue(yaml.NewRNode(item), fName))
		}
		s.edits = append(s.edits, splice{start, s.lineEnd(s.lines[lastLine(item)-1]), ""})
	}
	return s.result()
}
