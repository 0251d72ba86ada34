// Package daggerfake stands in for a Dagger engine session so that module code can be tested without
// one: it serves the GraphQL endpoint that the SDK reaches through DAGGER_SESSION_PORT and
// DAGGER_SESSION_TOKEN, records every query, and answers with what the test's Answer function returns.
//
// The SDK is lazy: a chain of calls becomes one query, sent when a leaf value (an ID, contents, stdout,
// a secret's plaintext, …) is requested. So the recorded queries are exactly the pipelines the code built.
package daggerfake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Answer returns the "data" object for one query, or an error to send as a GraphQL error.
type Answer func(query string) (any, error)

// Server is a recording stand-in for an engine session.
type Server struct {
	Token string

	srv    *httptest.Server
	answer Answer
	mu     sync.Mutex
	q      []string
}

// Start serves on 127.0.0.1 and points the SDK at it through the environment for the test's duration.
func Start(t testing.TB, answer Answer) *Server {
	t.Helper()
	s := &Server{Token: "fake-session-token", answer: answer}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(s.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DAGGER_SESSION_PORT", port)
	t.Setenv("DAGGER_SESSION_TOKEN", s.Token)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if u, _, ok := r.BasicAuth(); !ok || u != s.Token {
		http.Error(w, "bad session token", http.StatusUnauthorized)
		return
	}
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.q = append(s.q, req.Query)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	data, err := s.answer(req.Query)
	if err != nil {
		e := map[string]any{"message": err.Error()}
		var x *ExecFailure
		if errors.As(err, &x) {
			// As an engine reports a failed exec: the SDK turns it into a dagger.ExecError.
			e["extensions"] = map[string]any{"_type": "EXEC_ERROR", "cmd": x.Cmd, "exitCode": x.Code, "stdout": x.Stdout, "stderr": x.Stderr}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": nil, "errors": []map[string]any{e}})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}

// ExecFailure is an answer's error that the session reports as a failed exec, with the engine's
// extensions (command, exit code, output).
type ExecFailure struct {
	Cmd            []string
	Code           int
	Stdout, Stderr string
}

func (e *ExecFailure) Error() string {
	return fmt.Sprintf("process %q did not complete successfully: exit code: %d", strings.Join(e.Cmd, " "), e.Code)
}

// Queries returns the queries received so far.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.q...)
}

// All returns every query received, joined, for substring checks.
func (s *Server) All() string { return strings.Join(s.Queries(), "\n") }

// Nest builds the nested answer for a chain of fields ending in a leaf value:
// Nest("secret", "plaintext", "v") is {"secret": {"plaintext": "v"}}.
func Nest(pathAndLeaf ...any) any {
	if len(pathAndLeaf) == 1 {
		return pathAndLeaf[0]
	}
	key, ok := pathAndLeaf[0].(string)
	if !ok {
		panic(fmt.Sprintf("daggerfake.Nest: %v is not a field name", pathAndLeaf[0]))
	}
	return map[string]any{key: Nest(pathAndLeaf[1:]...)}
}

// Chain returns the field names of a linear query, outermost first:
// `query Query {container{from(address:"x"){withExec(args:["a"]){stdout}}}}` gives
// [container from withExec stdout]. Arguments (strings, lists, input objects) are skipped.
func Chain(query string) []string {
	var fields []string
	for _, st := range Steps(query) {
		fields = append(fields, st.Field)
	}
	return fields
}

// HasPublish reports whether any recorded query published a container.
func (s *Server) HasPublish() bool {
	for _, q := range s.Queries() {
		if slices.Contains(Chain(q), "publish") {
			return true
		}
	}
	return false
}

// Step is one field of a linear query with its raw arguments ("" without).
type Step struct{ Field, Args string }

// Steps returns the fields of a linear query in order, outermost first, with their arguments:
// the pipeline as the engine runs it (use it on Expand's output to see every step of a container).
func Steps(query string) []Step {
	var steps []Step
	i := strings.Index(query, "{")
	for i >= 0 && i < len(query) {
		if query[i] != '{' {
			i++
			continue
		}
		j := i + 1
		for j < len(query) && (query[j] == ' ' || query[j] == '\n') {
			j++
		}
		if strings.HasPrefix(query[j:], "... on ") {
			// An inline fragment (node(id){... on Container{…}}): its fields are the node's.
			i = j + len("... on ")
			continue
		}
		k := j
		for k < len(query) && isIdent(query[k]) {
			k++
		}
		if k == j {
			break
		}
		end := skipArgs(query, k)
		args := ""
		if end > k && query[k] == '(' {
			args = query[k+1 : end-1]
		}
		steps = append(steps, Step{Field: query[j:k], Args: args})
		i = end
	}
	return steps
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// skipArgs returns the index after a field's "(…)" arguments, if any, starting at i.
func skipArgs(q string, i int) int {
	for i < len(q) && q[i] == ' ' {
		i++
	}
	if i >= len(q) || q[i] != '(' {
		return i
	}
	depth, inString := 0, false
	for ; i < len(q); i++ {
		c := q[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			depth--
			if depth == 0 && c == ')' {
				return i + 1
			}
		}
	}
	return i
}

// Auto answers any linear query with leaf(last field) nested under the query's chain of fields.
func Auto(leaf func(field, query string) (any, error)) Answer {
	return func(q string) (any, error) {
		chain := Chain(q)
		if len(chain) == 0 {
			return nil, fmt.Errorf("daggerfake: cannot read query %q", q)
		}
		v, err := leaf(chain[len(chain)-1], q)
		if err != nil {
			return nil, err
		}
		path := make([]any, 0, len(chain)+1)
		for _, f := range chain {
			path = append(path, f)
		}
		return Nest(append(path, v)...), nil
	}
}

var idPattern = regexp.MustCompile(`fake-id-[0-9a-f]{16}`)

// IDOf is the ID Default gives the object a query selects: derived from the query, so that Expand
// can replace an ID by the pipeline that made it.
func IDOf(query string) string {
	sum := sha256.Sum256([]byte(query))
	return "fake-id-" + hex.EncodeToString(sum[:8])
}

// Expand replaces, recursively, every ID in q that a recorded query produced by that query: the whole
// pipeline, as the engine would see it.
func (s *Server) Expand(q string) string {
	byID := map[string]string{}
	for _, rq := range s.Queries() {
		byID[IDOf(rq)] = rq
	}
	for depth := 0; depth < 32; depth++ {
		next := idPattern.ReplaceAllStringFunc(q, func(id string) string {
			if def, ok := byID[id]; ok {
				return "<" + def + ">"
			}
			return id
		})
		if next == q {
			break
		}
		q = next
	}
	return q
}

// Default is the leaf value an engine would give for common fields: IDs for id/sync, true for
// exists, 0 for exitCode, a digest-pinned reference for publish, "" for text.
func Default(field, query string) (any, error) {
	switch field {
	case "id", "sync", "start":
		return IDOf(query), nil
	case "exists":
		return true, nil
	case "exitCode":
		return 0, nil
	case "publish":
		return "registry.invalid/published@sha256:" + strings.Repeat("ab", 32), nil
	case "entries", "glob":
		return []string{}, nil
	}
	return "", nil
}

// Calls returns the argument lists of every call of field in q ("" for a call without arguments),
// so that tests can check arguments whatever order the SDK wrote them in.
func Calls(q, field string) []string {
	var out []string
	for i := 0; ; {
		j := strings.Index(q[i:], field)
		if j < 0 {
			return out
		}
		start := i + j
		end := start + len(field)
		i = end
		if start > 0 && isIdent(q[start-1]) || end < len(q) && isIdent(q[end]) {
			continue // part of a longer name
		}
		if end < len(q) && q[end] == '(' {
			close := skipArgs(q, end)
			out = append(out, q[end+1:close-1])
			i = close
		} else {
			out = append(out, "")
		}
	}
}

// HasCall reports whether some call of field in q has all the given argument fragments
// (e.g. `alias:"mongo"`), in any order.
func HasCall(q, field string, args ...string) bool {
	for _, a := range Calls(q, field) {
		ok := true
		for _, want := range args {
			if !strings.Contains(a, want) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// Canonical rewrites a query so that two queries for the same pipeline compare equal: the SDK
// writes a call's arguments in any order, so every argument list is sorted, recursively (run it on
// Expand's output to compare whole definitions, as the engine's content-addressed IDs do).
func Canonical(q string) string {
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] == '"' {
			j := skipString(q, i)
			b.WriteString(q[i:j])
			i = j - 1
			continue
		}
		if q[i] != '(' {
			b.WriteByte(q[i])
			continue
		}
		end := skipArgs(q, i) // index after the matching ')'
		items := splitTop(q[i+1 : end-1])
		for k := range items {
			items[k] = Canonical(strings.TrimSpace(items[k]))
		}
		slices.Sort(items)
		b.WriteString("(" + strings.Join(items, ",") + ")")
		i = end - 1
	}
	return b.String()
}

// skipString returns the index after the string literal starting at i.
func skipString(q string, i int) int {
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(q)
}

// splitTop splits an argument list at its top-level commas.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			i = skipString(s, i) - 1
		case c == '(' || c == '[' || c == '{' || c == '<':
			depth++
		case c == ')' || c == ']' || c == '}' || c == '>':
			depth--
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

var quotedID = regexp.MustCompile(`"(fake-id-[0-9a-f]{16})"`)

// Definition is the canonical pipeline that made the object with this ID: every ID in it replaced,
// recursively, by the canonical pipeline that made it — two IDs of one definition give one string,
// as the engine's content-addressed IDs do.
func (s *Server) Definition(id string) string {
	byID := map[string]string{}
	for _, q := range s.Queries() {
		byID[IDOf(q)] = q
	}
	var def func(id string, depth int) string
	def = func(id string, depth int) string {
		q, ok := byID[id]
		if !ok || depth > 32 {
			return id
		}
		q = quotedID.ReplaceAllStringFunc(q, func(m string) string {
			return "<" + def(strings.Trim(m, `"`), depth+1) + ">"
		})
		return Canonical(q)
	}
	return def(id, 0)
}
