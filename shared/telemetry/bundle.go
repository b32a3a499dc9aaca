package telemetry

import (
	"io"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry is the one bundle every component's Config takes to log, trace
// and measure. A nil field means: the process's OpenTelemetry globals for
// Tracer and Meter (which a service's main sets through shared/runner), and
// a logger that discards for Logger.
type Telemetry struct {
	Logger *slog.Logger
	Tracer trace.TracerProvider
	Meter  metric.MeterProvider
}

// Resolved returns t with every nil field replaced by its default.
func (t Telemetry) Resolved() Telemetry {
	if t.Logger == nil {
		t.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if t.Tracer == nil {
		t.Tracer = otel.GetTracerProvider()
	}
	if t.Meter == nil {
		t.Meter = otel.GetMeterProvider()
	}
	return t
}
