package telemetry

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Metrics is an OpenTelemetry meter provider whose instruments are served
// in the Prometheus text format by Handler: mount it on /metrics (the
// service runner does). Each Metrics has its own registry, so tests and
// in-process fleets do not share counters.
type Metrics struct {
	provider *sdkmetric.MeterProvider
	handler  http.Handler
}

// MetricsOption configures NewMetrics.
type MetricsOption func(*metricsOptions)

type metricsOptions struct{ runtime bool }

// WithRuntimeMetrics adds the Go runtime and process collectors (go_*,
// process_*); one per process, so not for in-process test fleets.
func WithRuntimeMetrics() MetricsOption {
	return func(o *metricsOptions) { o.runtime = true }
}

// Duration buckets in seconds, from a fast handler (1 ms) to a slow stage
// (an hour): one histogram layout for handler latency, steps and stages.
var durationBuckets = []float64{0.001, 0.005, 0.025, 0.1, 0.25, 1, 2.5, 10, 30, 60, 300, 900, 3600}

// NewMetrics returns a meter provider exporting to a new Prometheus
// registry, with names translated the Prometheus way (dots to
// underscores, the unit and _total appended).
func NewMetrics(opts ...MetricsOption) (*Metrics, error) {
	var o metricsOptions
	for _, f := range opts {
		f(&o)
	}
	reg := prometheus.NewRegistry()
	if o.runtime {
		if err := reg.Register(collectors.NewGoCollector()); err != nil {
			return nil, fmt.Errorf("register go collector: %w", err)
		}
		if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
			return nil, fmt.Errorf("register process collector: %w", err)
		}
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("create prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: durationBuckets}})))
	return &Metrics{
		provider: mp,
		handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
	}, nil
}

// MeterProvider is where instruments are created.
func (m *Metrics) MeterProvider() metric.MeterProvider { return m.provider }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Shutdown stops the meter provider.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.provider.Shutdown(ctx) }
