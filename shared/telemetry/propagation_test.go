package telemetry

import (
	"context"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"go.opentelemetry.io/otel/trace"
)

func TestInjectExtractEventRoundTrip(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, err := trace.ParseTraceState("vendor=value")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	e := cloudevents.NewEvent()
	InjectEvent(ctx, &e)
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := e.Extensions()[ExtTraceParent]; got != want {
		t.Fatalf("traceparent = %v, want %s", got, want)
	}
	if got := e.Extensions()[ExtTraceState]; got != "vendor=value" {
		t.Fatalf("tracestate = %v", got)
	}

	got := trace.SpanContextFromContext(ExtractEvent(context.Background(), e))
	if !got.IsValid() || got.TraceID() != tid || got.SpanID() != sid || !got.IsRemote() || !got.IsSampled() {
		t.Fatalf("extracted %+v", got)
	}
	if got.TraceState().String() != "vendor=value" {
		t.Fatalf("tracestate extracted %q", got.TraceState().String())
	}
}

func TestInjectEventWithoutSpanLeavesEventAlone(t *testing.T) {
	e := cloudevents.NewEvent()
	InjectEvent(context.Background(), &e)
	if len(e.Extensions()) != 0 {
		t.Fatalf("extensions %v", e.Extensions())
	}
	InjectEvent(context.Background(), nil) // must not panic
	InjectEvent(context.Background(), &cloudevents.Event{})
}

func TestExtractEventIgnoresGarbage(t *testing.T) {
	ctx := context.Background()
	for _, tp := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		e := cloudevents.NewEvent()
		if tp != "" {
			e.SetExtension(ExtTraceParent, tp)
		}
		if sc := trace.SpanContextFromContext(ExtractEvent(ctx, e)); sc.IsValid() {
			t.Errorf("traceparent %q gave valid span context %v", tp, sc)
		}
	}
	if sc := trace.SpanContextFromContext(ExtractEvent(ctx, cloudevents.Event{})); sc.IsValid() {
		t.Error("zero event gave a span context")
	}
}
