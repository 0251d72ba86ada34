package main

import (
	"cmp"
	"context"
	"strings"

	"go.opentelemetry.io/otel"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"wanderlust.dev/pipeline/ci/gitops"
)

// tracing installs a tracer provider that exports the stages' spans where the environment says
// (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT and _PROTOCOL, as a Dagger engine sets them in every exec)
// and returns the context of the caller's span (TRACEPARENT/TRACESTATE), so that the program's spans
// nest under the Dagger function that ran it. Without an endpoint it does nothing; the returned
// function flushes the spans.
func tracing(ctx context.Context, getenv func(string) string) (context.Context, func()) {
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); endpoint == "" && base != "" {
		endpoint = strings.TrimRight(base, "/") + "/v1/traces" // the signal's path under the base, as the spec says
	}
	if endpoint == "" {
		return ctx, func() {}
	}
	protocol := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp *otlptrace.Exporter
	var err error
	if strings.HasPrefix(protocol, "grpc") {
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cmp.Or(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))))
	} else {
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	}
	if err != nil {
		logf("tracing off: " + err.Error())
		return ctx, func() {}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(gitops.Program))))
	otel.SetTracerProvider(tp)
	prop := propagation.TraceContext{}
	otel.SetTextMapPropagator(prop)
	ctx = prop.Extract(ctx, propagation.MapCarrier{"traceparent": getenv("TRACEPARENT"), "tracestate": getenv("TRACESTATE")})
	return ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10e9)
		defer cancel()
		_ = tp.Shutdown(sctx)
	}
}
