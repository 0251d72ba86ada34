package manifest

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// source is one YAML file under edit. kyaml finds the nodes; the edits are spliced into the original
// bytes at the nodes' positions, so that everything else (comments, key order, quoting, indentation,
// blank lines) stays byte for byte.
type source struct {
	path  string
	data  []byte
	lines []int // byte offset of the start of each line
	edits []splice
	// bom is the length of a UTF-8 byte order mark at the start (the parser's columns start after it);
	// crlf says the file's lines end in CR LF, which added lines then use too.
	bom  int
	crlf bool
}

type splice struct {
	start, end int // byte range replaced
	text       string
}

func newSource(path string, data []byte) *source {
	s := &source{path: path, data: data, lines: []int{0}}
	for i, b := range data {
		if b == '\n' {
			s.lines = append(s.lines, i+1)
		}
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		s.bom = 3
	}
	if i := bytes.IndexByte(data, '\n'); i > 0 && data[i-1] == '\r' {
		s.crlf = true
	}
	return s
}

// documents decodes every YAML document of the file.
func (s *source) documents() ([]*yaml.RNode, error) {
	dec := yaml.NewDecoder(bytes.NewReader(s.data))
	var docs []*yaml.RNode
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err != nil {
			if err == io.EOF {
				return docs, nil
			}
			return nil, fmt.Errorf("%s: %w", s.path, err)
		}
		if len(n.Content) == 1 {
			if err := s.duplicateKeys(n.Content[0]); err != nil {
				return nil, err
			}
			docs = append(docs, yaml.NewRNode(n.Content[0]))
		}
	}
}

// duplicateKeys refuses a mapping that holds a key twice: YAML forbids it, the parser keeps the first
// and kustomize the last, so an edit could change a value that is not the one that renders.
func (s *source) duplicateKeys(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		first := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				continue
			}
			if l, ok := first[k.Value]; ok {
				return fmt.Errorf("%s:%d: duplicate key %q (first at line %d); remove one", s.path, k.Line, k.Value, l)
			}
			first[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := s.duplicateKeys(c); err != nil {
			return err
		}
	}
	return nil
}

// offset converts a node's 1-based line and column (in characters) to a byte offset.
func (s *source) offset(n *yaml.Node) int {
	if n.Line < 1 || n.Line > len(s.lines) {
		return -1
	}
	off := s.lines[n.Line-1]
	if n.Line == 1 {
		off += s.bom
	}
	for col := 1; col < n.Column && off < len(s.data); col++ {
		_, size := utf8.DecodeRune(s.data[off:])
		off += size
	}
	return off
}

// lineEnd is the offset just past the newline of the line holding offset off (or the end of data).
func (s *source) lineEnd(off int) int {
	if i := bytes.IndexByte(s.data[off:], '\n'); i >= 0 {
		return off + i + 1
	}
	return len(s.data)
}

// scalarExtent returns the byte range of a single-line scalar as written, quotes included.
func (s *source) scalarExtent(n *yaml.Node) (int, int, error) {
	start := s.offset(n)
	if start < 0 || n.Kind != yaml.ScalarNode {
		return 0, 0, fmt.Errorf("%s:%d: not an editable scalar", s.path, n.Line)
	}
	end := -1
	switch n.Style {
	case 0:
		if bytes.HasPrefix(s.data[start:], []byte(n.Value)) {
			end = start + len(n.Value)
		}
	case yaml.DoubleQuotedStyle:
		for i := start + 1; i < len(s.data) && s.data[i] != '\n'; i++ {
			if s.data[i] == '\\' {
				i++
				continue
			}
			if s.data[i] == '"' {
				end = i + 1
				break
			}
		}
	case yaml.SingleQuotedStyle:
		for i := start + 1; i < len(s.data) && s.data[i] != '\n'; i++ {
			if s.data[i] == '\'' {
				if i+1 < len(s.data) && s.data[i+1] == '\'' {
					i++
					continue
				}
				end = i + 1
				break
			}
		}
	}
	if end < 0 {
		return 0, 0, fmt.Errorf("%s:%d: value %q is not a single-line scalar; edit it by hand", s.path, n.Line, n.Value)
	}
	return start, end, nil
}

// setScalar replaces the value of scalar n, keeping its quoting style where the new value allows.
func (s *source) setScalar(n *yaml.Node, value string) error {
	start, end, err := s.scalarExtent(n)
	if err != nil {
		return err
	}
	var text string
	switch {
	case n.Style == yaml.SingleQuotedStyle:
		text = "'" + strings.ReplaceAll(value, "'", "''") + "'"
	case n.Style == yaml.DoubleQuotedStyle || !plainSafe(value):
		text = doubleQuote(value)
	default:
		text = value
	}
	s.edits = append(s.edits, splice{start, end, text})
	return nil
}

// deleteLine removes the whole line that holds key node k (a "key: value" pair on one line).
func (s *source) deleteLine(k, v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode || v.Line != k.Line {
		return fmt.Errorf("%s:%d: %q spans several lines; edit it by hand", s.path, k.Line, k.Value)
	}
	start := s.lines[k.Line-1]
	// A key that opens its sequence item ("- key: v") cannot go without rewriting the item.
	prefix := string(s.data[start:s.offset(k)])
	if strings.TrimSpace(prefix) != "" {
		return fmt.Errorf("%s:%d: cannot remove %q, the first key of its item; edit it by hand", s.path, k.Line, k.Value)
	}
	s.edits = append(s.edits, splice{start, s.lineEnd(start), ""})
	return nil
}

// deleteFlowPair removes key k and its value from flow mapping m ("{a: 1, k: 2}" → "{a: 1}").
func (s *source) deleteFlowPair(m, k *yaml.Node) error {
	i := 0
	for i < len(m.Content) && m.Content[i] != k {
		i += 2
	}
	if i >= len(m.Content) {
		return fmt.Errorf("%s:%d: %q not found in its mapping", s.path, k.Line, k.Value)
	}
	v := m.Content[i+1]
	if i == 0 {
		if len(m.Content) < 4 {
			return fmt.Errorf("%s:%d: cannot remove %q, the only key of its mapping; edit it by hand", s.path, k.Line, k.Value)
		}
		start, next := s.offset(k), s.offset(m.Content[2])
		if start < 0 || next < start {
			return fmt.Errorf("%s:%d: cannot remove %q; edit it by hand", s.path, k.Line, k.Value)
		}
		s.edits = append(s.edits, splice{start, next, ""})
		return nil
	}
	_, from, err := s.scalarExtent(m.Content[i-1])
	if err != nil {
		return err
	}
	_, to, err := s.scalarExtent(v)
	if err != nil {
		return err
	}
	s.edits = append(s.edits, splice{from, to, ""})
	return nil
}

// flowEnd is the offset just past the closing brace or bracket of flow collection n.
func (s *source) flowEnd(n *yaml.Node) (int, error) {
	if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode || n.Style&yaml.FlowStyle == 0 || len(n.Content) == 0 {
		return 0, fmt.Errorf("%s:%d: cannot find the end of this item; edit it by hand", s.path, n.Line)
	}
	last := n.Content[len(n.Content)-1]
	var end int
	var err error
	if last.Kind == yaml.ScalarNode {
		_, end, err = s.scalarExtent(last)
	} else {
		end, err = s.flowEnd(last)
	}
	if err != nil {
		return 0, err
	}
	closer := byte('}')
	if n.Kind == yaml.SequenceNode {
		closer = ']'
	}
	for i := end; i < len(s.data); i++ {
		switch s.data[i] {
		case ' ', '\t', '\r', '\n':
			continue
		case closer:
			return i + 1, nil
		}
		break
	}
	return 0, fmt.Errorf("%s:%d: cannot find the end of this item; edit it by hand", s.path, n.Line)
}

// insertAfterLine inserts text (whole lines) after the line that ends the subtree of n.
func (s *source) insertAfterLine(n *yaml.Node, text string) {
	off := s.lineEnd(s.lines[lastLine(n)-1])
	if off == len(s.data) && (len(s.data) == 0 || s.data[len(s.data)-1] != '\n') {
		text = "\n" + text
	}
	s.edits = append(s.edits, splice{off, off, text})
}

// appendText adds text at the end of the file, on a line of its own.
func (s *source) appendText(text string) {
	if len(s.data) > 0 && s.data[len(s.data)-1] != '\n' {
		text = "\n" + text
	}
	s.edits = append(s.edits, splice{len(s.data), len(s.data), text})
}

// result applies the edits and returns the new bytes.
func (s *source) result() ([]byte, error) {
	edits := append([]splice(nil), s.edits...)
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var out bytes.Buffer
	prev := 0
	for _, e := range edits {
		if e.start < prev {
			return nil, fmt.Errorf("%s: overlapping edits", s.path)
		}
		text := e.text
		if s.crlf && strings.Contains(text, "\n") {
			text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n")
		}
		out.Write(s.data[prev:e.start])
		out.WriteString(text)
		prev = e.end
	}
	out.Write(s.data[prev:])
	b := out.Bytes()
	// The edit is structural: the result must still parse.
	if _, err := newSource(s.path, b).documents(); err != nil {
		return nil, fmt.Errorf("%s: edit would produce invalid YAML: %w", s.path, err)
	}
	return b, nil
}

// lastLine is the last line that node n's subtree occupies.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		if cl := lastLine(c); cl > l {
			l = cl
		}
	}
	return l
}

// plainSafe reports whether v can be written as a plain scalar and still read back as the same string,
// by YAML 1.2 (our parser) and by YAML 1.1 (kustomize reads kustomizations with sigs.k8s.io/yaml,
// where yes/no/on/off/y/n are booleans, 0755 is octal and 1_000 a number).
func plainSafe(v string) bool {
	var m map[string]any
	if err := sigsyaml.Unmarshal([]byte("k: "+v), &m); err != nil {
		return false
	}
	if got, ok := m["k"].(string); !ok || got != v {
		return false
	}
	if v == "" || strings.ContainsAny(v, ":#{}[],&*!|>'\"%@` \t\n") && !imageLike(v) {
		return false
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("k: "+v), &n); err != nil || len(n.Content) != 1 || len(n.Content[0].Content) != 2 {
		return false
	}
	val := n.Content[0].Content[1]
	return val.Tag == "!!str" && val.Value == v
}

// imageLike allows the ':' and '@' of image references ("repo:tag@sha256:…") in plain scalars.
func imageLike(v string) bool {
	return !strings.ContainsAny(v, "#{}[],&*!|>'\"%` \t\n") && !strings.Contains(v, ": ")
}

func doubleQuote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(v) + `"`
}
