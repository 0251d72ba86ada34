// Package otlpcollector is an OTLP/HTTP trace receiver for tests: what a Dagger engine serves at the
// OTEL_EXPORTER_OTLP_ENDPOINT it gives every exec.
package otlpcollector

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is a received span: name, and trace, span and parent IDs in hex.
type Span struct {
	Name, Trace, ID, Parent string
	// Text is every text the span carries: its attributes, status message and events, one per line
	// (tests look for what must not be there).
	Text string
}

// Collector receives trace exports on /v1/traces (protobuf).
type Collector struct {
	URL string

	srv   *httptest.Server
	mu    sync.Mutex
	spans []Span
}

// Start serves on loopback until Close.
func Start() *Collector {
	c := &Collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	c.URL = c.srv.URL
	return c
}

// Close stops the server.
func (c *Collector) Close() { c.srv.Close() }

// Spans are the spans received so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				var text []string
				for _, a := range s.Attributes {
					text = append(text, a.Key+"="+a.Value.String())
				}
				for _, e := range s.Events {
					text = append(text, e.Name)
					for _, a := range e.Attributes {
						text = append(text, a.Key+"="+a.Value.String())
					}
				}
				if s.Status != nil {
					text = append(text, s.Status.Message)
				}
				c.spans = append(c.spans, Span{Name: s.Name, Trace: hex.EncodeToString(s.TraceId), ID: hex.EncodeToString(s.SpanId),
					Parent: hex.EncodeToString(s.ParentSpanId), Text: strings.Join(text, "\n")})
			}
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	_, _ = w.Write(b)
}
