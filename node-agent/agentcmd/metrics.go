package agentcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"ibu.dev/shared/telemetry"
)

// serveMetrics serves the agent's Prometheus metrics on addr/metrics until
// stop is called; with no addr the metrics go nowhere.
func serveMetrics(ctx context.Context, addr string, log *slog.Logger) (mp metric.MeterProvider, stop func(), err error) {
	if addr == "" {
		return noop.NewMeterProvider(), func() {}, nil
	}
	m, err := telemetry.NewMetrics(telemetry.WithRuntimeMetrics())
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return m.MeterProvider(), func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		_ = m.Shutdown(sctx)
	}, nil
}
