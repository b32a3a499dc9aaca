package seedbuild_test

import (
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/natstest"
)

// The seed-builder traces the requests it consumes, and the events it
// publishes, with the tracer of its Telemetry.
func TestTelemetryTracesRequests(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	r := newRigWith(t, telemetry.Telemetry{Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))})
	r.request(t, "traced", "nowhere", r.reg.Ref("seeds/sno:traced"), r.authFile)
	if rec := r.result(t, "traced"); rec.State != state.SeedBuildFailed || rec.Reason != "UnknownCluster" {
		t.Fatalf("build %s %s, want Failed UnknownCluster", rec.State, rec.Reason)
	}
	// The consumer ends its span once the handler has returned, after the
	// record is written.
	natstest.WaitFor(t, 10*time.Second, "a span of the consumed request and one of a published event", func() bool {
		process, send := false, false
		for _, s := range spans.Ended() {
			process = process || s.Name() == "process "+bus.StreamRequests
			send = send || strings.HasPrefix(s.Name(), "send ")
		}
		return process && send
	})
}
