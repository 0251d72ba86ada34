package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"wanderlust.dev/pipeline/ci/stages/bump"
)

// recordSpans installs an OpenTelemetry SDK provider that records every span, as the Dagger SDK's
// provider does in a module (the stages use the global provider).
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	saved := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(saved); _ = tp.Shutdown(context.Background()) })
	return rec
}

// spanTree renders the recorded spans as an indented tree (name, duration, attributes).
func spanTree(spans []sdktrace.ReadOnlySpan) string {
	children := map[string][]sdktrace.ReadOnlySpan{}
	ids := map[string]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID().String()] = true
	}
	for _, s := range spans {
		p := s.Parent().SpanID().String()
		if !s.Parent().IsValid() || !ids[p] {
			p = "root"
		}
		children[p] = append(children[p], s)
	}
	var b strings.Builder
	var walk func(id string, depth int)
	walk = func(id string, depth int) {
		cs := children[id]
		sort.Slice(cs, func(i, j int) bool { return cs[i].StartTime().Before(cs[j].StartTime()) })
		for _, s := range cs {
			var attrs []string
			for _, a := range s.Attributes() {
				v := a.Value.Emit()
				if len(v) > 40 {
					v = v[:40] + "…"
				}
				attrs = append(attrs, string(a.Key)+"="+v)
			}
			fmt.Fprintf(&b, "%s%s %s [%s]", strings.Repeat("  ", depth), s.Name(), s.EndTime().Sub(s.StartTime()).Round(time.Millisecond), strings.Join(attrs, " "))
			if n := len(s.Events()); n > 0 {
				fmt.Fprintf(&b, " (%d events)", n)
			}
			b.WriteString("\n")
			walk(s.SpanContext().SpanID().String(), depth+1)
		}
	}
	walk("root", 0)
	return b.String()
}

// A deploy emits a span per stage, nested under the caller's span, with the stages' own spans inside
// (git fetch, edit, each push; Argo CD refresh and wait with one event per state change; the mail),
// and no secret in any attribute or event.
func TestDeployEmitsTheSpanTreeWithoutSecrets(t *testing.T) {
	w := setup(t, "trace")
	rec := recordSpans(t)
	ctx, root := otel.Tracer("test").Start(context.Background(), "Wanderlust.deploy")
	argo := w.argo(t, "trace-dev")
	rep, err := Run(ctx, Options{Images: []string{w.push(t, "wanderlust-backend", "2.0.0")}, PinDigest: true,
		Bump: bump.Options{Git: w.gitOpts("trace"), Env: "dev"}, Argo: &argo, Rollback: true, Notify: w.mail()}, nil)
	root.End()
	if err != nil {
		t.Fatalf("%v\n%s", err, rep.Text())
	}
	spans := rec.Ended()
	tree := spanTree(spans)
	t.Logf("span tree of one deploy:\n%s", tree)
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if _, seen := byName[s.Name()]; !seen {
			byName[s.Name()] = s
		}
	}
	name := map[trace.SpanID]string{}
	for _, s := range spans {
		name[s.SpanContext().SpanID()] = s.Name()
	}
	// Some span named child has a parent named parent (git.commit appears twice: the bump's, and the
	// record's note under "record").
	for child, parent := range map[string]string{
		"preflight": "Wanderlust.deploy", "argocd.preflight": "preflight", "verify": "Wanderlust.deploy", "bump": "Wanderlust.deploy",
		"git.commit": "bump", "git.fetch": "git.commit", "git.edit": "git.commit", "git.push": "git.commit",
		"sync": "Wanderlust.deploy", "argocd.sync": "sync", "argocd.refresh": "argocd.sync", "notify": "Wanderlust.deploy", "notify.send": "notify",
		"record": "Wanderlust.deploy",
	} {
		found := false
		for _, s := range spans {
			if s.Name() == child && name[s.Parent().SpanID()] == parent {
				found = true
			}
		}
		if !found {
			t.Errorf("no span %s under %s", child, parent)
		}
	}
	if s := byName["argocd.sync"]; s == nil || len(s.Events()) < 2 {
		t.Error("the Argo CD wait records no state changes")
	}
	for _, s := range spans {
		var texts []string
		for _, a := range s.Attributes() {
			texts = append(texts, a.Value.Emit())
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				texts = append(texts, a.Value.Emit())
			}
		}
		for _, secret := range []string{gitToken, smtpPass, w.h.Token} {
			if strings.Contains(strings.Join(texts, " "), secret) {
				t.Errorf("span %s carries a secret", s.Name())
			}
		}
	}
	// The report's stage durations are the spans' own.
	for _, st := range rep.Stages {
		if s, ok := byName[st.Name]; ok && s.EndTime().Sub(s.StartTime())-st.Duration > 5*time.Millisecond {
			t.Errorf("stage %s: report %s, span %s", st.Name, st.Duration, s.EndTime().Sub(s.StartTime()))
		}
	}
}
