// Package telemetry gives the Go stages OpenTelemetry spans through the global tracer provider. In a
// Dagger module the SDK installs that provider and passes the function's span in the context, so the
// stages' spans nest under the function call in `dagger call` output and in any trace backend;
// elsewhere (tests, other programs) whatever provider the program installed records them. No Dagger
// types here: the stages stay testable alone.
//
// Attributes carry what helps to follow a run (environment, image references, SHAs, attempt counts,
// Argo CD phase and health) and never a secret: callers pass no credentials, and Attr drops any value
// that looks like one (a URL with user info).
package telemetry

import (
	"context"
	"regexp"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of the pipeline's spans.
const Scope = "wanderlust.dev/pipeline"

// Start starts a span named name under the context's span.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.Tracer(Scope).Start(ctx, name, trace.WithAttributes(attrs...))
}

// End ends the span, recording err (nil: success).
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, truncate(err.Error()))
	} else {
		span.SetStatus(codes.Ok, "")
	}
	span.End()
}

var credentialsInURL = regexp.MustCompile(`://[^/@\s]+@`)

// Attr is a string attribute, truncated to 1 KiB; a value holding a URL with credentials is dropped.
func Attr(key, value string) attribute.KeyValue {
	if credentialsInURL.MatchString(value) {
		value = "(withheld: holds credentials)"
	}
	return attribute.String(key, truncate(value))
}

func truncate(s string) string {
	if len(s) > 1024 {
		return s[:1021] + "..."
	}
	return s
}
