// Package daggerfake stands in for a Dagger engine session so that module code can be tested without
// one: it serves the GraphQL endpoint that the SDK reaches through DAGGER_SESSION_PORT and
// DAGGER_SESSION_TOKEN, records every query, and answers with what the test's Answer function returns.
//
// The SDK is lazy: a chain of calls becomes one query, sent when a leaf value (an ID, contents, stdout,
// a secret's plaintext, …) is requested. So the recorded queries are exactly the pipelines the code built.
package daggerfake

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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
		_ = json.NewEncoder(w).Encode(map[string]any{"data": nil, "errors": []map[string]any{{"message": err.Error()}}})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
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
