package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNewProviderFromEnvironment(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		cfg     Config
		wantErr error
		noop    bool
	}{
		{name: "unset means none", cfg: Config{Getenv: env(nil)}, noop: true},
		{name: "none", cfg: Config{Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "none"})}, noop: true},
		{name: "console", cfg: Config{Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "console"}), Writer: &bytes.Buffer{}}},
		{name: "otlp grpc", cfg: Config{Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})}},
		{name: "otlp http", cfg: Config{Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})}},
		{name: "typo", cfg: Config{Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "otpl"})}, wantErr: ErrUnknownExporter},
		{name: "bad protocol", cfg: Config{Getenv: env(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "udp"})}, wantErr: ErrUnknownExporter},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewProvider(ctx, c.cfg)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// No span is recorded: an OTLP exporter would try to deliver it
			// to an endpoint that is not there. The provider's kind is enough.
			_, isSDK := p.TracerProvider.(*sdktrace.TracerProvider)
			if isSDK == c.noop {
				t.Errorf("sdk provider = %v, want %v", isSDK, !c.noop)
			}
			if err := p.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

func TestConsoleExporterWritesSpans(t *testing.T) {
	var buf bytes.Buffer
	ctx := context.Background()
	p, err := NewProvider(ctx, Config{ServiceName: "scheduler", Exporter: "file", Writer: &buf, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer("test").Start(ctx, "prep")
	span.End()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"Name":"prep"`) || !strings.Contains(buf.String(), "scheduler") {
		t.Fatalf("span not written: %s", buf.String())
	}
}

func TestLoggerStampsTraceIDs(t *testing.T) {
	var spans, logs bytes.Buffer
	ctx := context.Background()
	p, err := NewProvider(ctx, Config{Exporter: "console", Writer: &spans, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	log, err := NewLogger(&logs, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := p.Tracer("test").Start(ctx, "step")
	log.With("cluster", "sno1").InfoContext(ctx, "pivot")
	span.End()
	var rec map[string]any
	if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["trace_id"] != span.SpanContext().TraceID().String() || rec["span_id"] != span.SpanContext().SpanID().String() || rec["cluster"] != "sno1" {
		t.Fatalf("log record %v lacks the span's ids", rec)
	}
	if _, err := NewLogger(&logs, "xml", "info"); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := NewLogger(&logs, "json", "loud"); err == nil {
		t.Error("unknown level accepted")
	}
}
