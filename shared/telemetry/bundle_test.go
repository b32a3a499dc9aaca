package telemetry

import (
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"
)

func TestResolvedKeepsWhatIsSetAndFillsTheRest(t *testing.T) {
	tp := noop.NewTracerProvider()
	log := slog.Default()
	got := Telemetry{Tracer: tp, Logger: log}.Resolved()
	if got.Tracer != tp || got.Logger != log {
		t.Fatalf("Resolved replaced a field that was set: %+v", got)
	}
	if got.Meter == nil {
		t.Fatal("Resolved left Meter nil")
	}
	if empty := (Telemetry{}).Resolved(); empty.Logger == nil || empty.Tracer == nil || empty.Meter == nil {
		t.Fatalf("Resolved left a nil field: %+v", empty)
	}
}
