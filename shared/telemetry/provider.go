package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config chooses the trace exporter. Zero values fall back to the standard
// OTEL_* environment; fields set here win over it.
type Config struct {
	// ServiceName is the service.name resource attribute
	// (OTEL_SERVICE_NAME overrides it, as the specification says).
	ServiceName string
	// ServiceVersion is the service.version resource attribute.
	ServiceVersion string
	// Exporter is one of "otlp", "console", "file", "none". Empty means
	// OTEL_TRACES_EXPORTER, and "none" when that is unset too.
	Exporter string
	// Protocol for otlp: "grpc" or "http/protobuf". Empty means
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL, then grpc.
	Protocol string
	// Writer receives spans for the "console" and "file" exporters
	// (default os.Stdout).
	Writer io.Writer
	// Getenv reads the environment (default os.Getenv); tests pass a map.
	Getenv func(string) string
}

// Provider is a configured tracer provider. Shutdown flushes pending spans.
type Provider struct {
	trace.TracerProvider
	shutdown func(context.Context) error
	flush    func(context.Context) error
}

// ForceFlush exports the spans ended so far (tests call it before they
// look at what a collector received).
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p.flush == nil {
		return nil
	}
	return p.flush(ctx)
}

// Shutdown flushes and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.shutdown == nil {
		return nil
	}
	return p.shutdown(ctx)
}

// Propagator is the W3C trace-context propagator that ibu uses in NATS
// headers and CloudEvent extensions.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// ErrUnknownExporter is returned for an exporter or protocol name that ibu
// does not know; a typo must not silently turn tracing off.
var ErrUnknownExporter = errors.New("unknown trace exporter")

// NewProvider builds a tracer provider from cfg and the environment.
func NewProvider(ctx context.Context, cfg Config) (*Provider, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	exporter := firstNonEmpty(cfg.Exporter, getenv("OTEL_TRACES_EXPORTER"), "none")
	if exporter == "none" {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch exporter {
	case "otlp":
		proto := firstNonEmpty(cfg.Protocol, getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
			getenv("OTEL_EXPORTER_OTLP_PROTOCOL"), "grpc")
		switch proto {
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
		case "http/protobuf", "http":
			exp, err = otlptracehttp.New(ctx)
		default:
			return nil, fmt.Errorf("%w: otlp protocol %q (want grpc or http/protobuf)", ErrUnknownExporter, proto)
		}
	case "console", "file", "stdout":
		w := cfg.Writer
		if w == nil {
			w = os.Stdout
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
	default:
		return nil, fmt.Errorf("%w: %q (want otlp, console, file or none)", ErrUnknownExporter, exporter)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s trace exporter: %w", exporter, err)
	}
	name := firstNonEmpty(getenv("OTEL_SERVICE_NAME"), cfg.ServiceName, "ibu")
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(name), semconv.ServiceVersion(firstNonEmpty(cfg.ServiceVersion, "dev"))))
	if err != nil {
		// Only a schema URL conflict can fail here; keep our attributes.
		res = resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithIDGenerator(idGenerator{}))
	return &Provider{TracerProvider: tp, shutdown: tp.Shutdown, flush: tp.ForceFlush}, nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
