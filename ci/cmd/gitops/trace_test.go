package main

import (
	"context"
	"testing"

	"wanderlust.dev/pipeline/ci/stages/telemetry"
	"wanderlust.dev/pipeline/ci/testsupport/otlpcollector"
)

// The program's stage spans reach the endpoint the engine names, in the trace of the Dagger function
// that ran it (TRACEPARENT), under that function's span; without an endpoint nothing is installed.
func TestStageSpansNestUnderTheCallersSpan(t *testing.T) {
	c := otlpcollector.Start()
	defer c.Close()
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": c.URL, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"TRACEPARENT": "00-" + traceID + "-" + parentID + "-01",
	}
	ctx, flush := tracing(context.Background(), func(k string) string { return env[k] })
	sctx, span := telemetry.Start(ctx, "argocd.sync")
	_, child := telemetry.Start(sctx, "argocd.wait")
	telemetry.End(child, nil)
	telemetry.End(span, nil)
	flush()
	byName := map[string]otlpcollector.Span{}
	for _, s := range c.Spans() {
		byName[s.Name] = s
	}
	sync, wait := byName["argocd.sync"], byName["argocd.wait"]
	if sync.ID == "" || wait.ID == "" {
		t.Fatalf("spans received: %v", byName)
	}
	if sync.Trace != traceID || sync.Parent != parentID {
		t.Errorf("argocd.sync in trace %s under %s, want the caller's %s under %s", sync.Trace, sync.Parent, traceID, parentID)
	}
	if wait.Parent != sync.ID {
		t.Error("argocd.wait is not under argocd.sync")
	}
	if ctx2, _ := tracing(context.Background(), func(string) string { return "" }); ctx2 != context.Background() {
		t.Error("without an endpoint the context changed")
	}
}
