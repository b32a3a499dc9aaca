package telemetry

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instruments come out in Prometheus conventions: units and _total in the
// names, the duration buckets, no scope labels, and each Metrics its own
// registry.
func TestMetricsHandler(t *testing.T) {
	m, err := NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(context.Background())
	other, err := NewMetrics()
	if err != nil {
		t.Fatal(err)
	}
	meter := m.MeterProvider().Meter("test")
	c, _ := meter.Int64Counter("ibu.test.things", metric.WithUnit("{thing}"))
	h, _ := meter.Float64Histogram("ibu.test.wait", metric.WithUnit("s"))
	b, _ := meter.Int64Counter("ibu.test.pulled", metric.WithUnit("By"))
	ctx := context.Background()
	c.Add(ctx, 2, metric.WithAttributes(attribute.String("kind", "a")))
	h.Record(ctx, (1500 * time.Millisecond).Seconds())
	b.Add(ctx, 4096)

	page := get(t, m)
	for _, want := range []string{
		`ibu_test_things_total{kind="a"} 2`,
		`ibu_test_wait_seconds_bucket{le="2.5"} 1`,
		`ibu_test_wait_seconds_bucket{le="1"} 0`,
		`ibu_test_pulled_bytes_total 4096`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("metrics lack %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "otel_scope") {
		t.Errorf("scope labels in the output:\n%s", page)
	}
	if strings.Contains(get(t, other), "ibu_test_things_total") {
		t.Error("a second Metrics shares the first one's registry")
	}
}

func TestRuntimeMetrics(t *testing.T) {
	m, err := NewMetrics(WithRuntimeMetrics())
	if err != nil {
		t.Fatal(err)
	}
	if page := get(t, m); !strings.Contains(page, "go_goroutines") || !strings.Contains(page, "process_") {
		t.Errorf("no runtime metrics:\n%.500s", page)
	}
}

func get(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
