package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsconn"
	"ibu.dev/shared/telemetry"
)

// Service is what a service's run function gets: a connection to the
// hub's NATS with the topology in place, and the telemetry to hand to the
// service's Config.
type Service struct {
	Config Config
	Conn   *nats.Conn
	JS     jetstream.JetStream
	// Telemetry's Logger is the service's, its Tracer exports as the
	// OTEL_* environment says, and its Meter to the /metrics endpoint.
	Telemetry telemetry.Telemetry
}

// Main runs the service until SIGTERM or SIGINT and exits: 0 after a
// signal, 2 for a bad setting, 1 for any other error (said on stderr).
func Main(cfg *Config, run func(ctx context.Context, s *Service) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	c := *cfg
	c.Global = true
	err := Run(ctx, c, os.Stderr, run)
	stop()
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", cfg.Name, err)
	if errors.Is(err, ErrConfig) {
		os.Exit(2)
	}
	os.Exit(1)
}

// ErrConfig marks a setting that cannot work.
var ErrConfig = errors.New("bad setting")

// Run sets the service up as the package doc says, calls run, and when
// ctx ends (run should then return) drains the connection. Logs go to
// logOut. It returns nil after a clean stop.
func Run(ctx context.Context, cfg Config, logOut io.Writer, run func(ctx context.Context, s *Service) error) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log, err := telemetry.NewLogger(logOut, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log = log.With("service", cfg.Name)
	tp, err := telemetry.NewProvider(ctx, telemetry.Config{ServiceName: "ibu-" + cfg.Name, ServiceVersion: cfg.Version, Getenv: cfg.Getenv})
	if err != nil {
		return fmt.Errorf("%w: tracing from the OTEL_* environment: %w", ErrConfig, err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("flush traces", "error", err)
		}
	}()

	var mp metric.MeterProvider = noop.NewMeterProvider()
	if cfg.Metrics == nil {
		var opts []telemetry.MetricsOption
		if cfg.Global {
			opts = append(opts, telemetry.WithRuntimeMetrics())
		}
		m, err := telemetry.NewMetrics(opts...)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer func() { _ = m.Shutdown(context.WithoutCancel(ctx)) }()
		cfg.Metrics, mp = m.Handler(), m.MeterProvider()
	}
	if cfg.Global {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
	}

	h := &Health{}
	if cfg.HealthAddr != "" {
		stop, addr, err := h.Serve(cfg.HealthAddr, cfg.Metrics, log)
		if err != nil {
			return err
		}
		if cfg.OnListen != nil {
			cfg.OnListen(addr)
		}
		defer stop()
	}

	log.Info("starting", "nats", natsconn.Redact(cfg.NATS.URL), "streamReplicas", cfg.StreamReplicas)
	nc, err := Connect(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before NATS was reachable")
			return nil
		}
		return err
	}
	h.SetConn(nc)
	defer drain(nc, cfg.DrainTimeout, log)
	if unregister, err := bus.InstrumentConn(nc, mp); err == nil {
		defer func() { _ = unregister() }()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("JetStream: %w", err)
	}
	if !cfg.SkipTopology {
		if err := bus.EnsureTopology(ctx, js, bus.Replicas(cfg.StreamReplicas)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			h.SetNotReady("ensure topology: " + err.Error())
			return fmt.Errorf("ensure the streams and buckets: %w", err)
		}
	}
	h.SetReady(true)
	log.Info("ready")
	if !cfg.SkipTopology {
		// Every hub service reaps what a spoke's watch right lets it
		// leave behind on the buckets (bus.ReapDurables).
		go bus.ReapDurablesEvery(ctx, js, time.Minute, log)
	}
	err = run(ctx, &Service{Config: cfg, Conn: nc, JS: js, Telemetry: telemetry.Telemetry{Logger: log, Tracer: tp, Meter: mp}})
	h.SetReady(false)
	switch {
	case ctx.Err() != nil && err != nil:
		log.Warn("stopped with an error while shutting down", "error", err)
		return nil
	case err != nil:
		return err
	}
	log.Info("stopped")
	return nil
}

// drain lets the subscriptions deliver what they hold and flushes what is
// published, within timeout, then closes.
func drain(nc *nats.Conn, timeout time.Duration, log *slog.Logger) {
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-closed:
	case <-time.After(timeout):
		log.Warn("NATS drain did not finish; closing", "timeout", timeout)
		nc.Close()
	}
}

// Connect dials NATS with the configuration's connection options
// (natsconn.Config.Options; the name defaults to "ibu-" + cfg.Name),
// retrying with backoff (and a log line per distinct
// failure) until the first connection or ctx's end; afterwards the client
// reconnects forever, buffering publishes. Connection trouble and
// permission denials, which NATS reports only asynchronously, are logged.
func Connect(ctx context.Context, cfg Config, log *slog.Logger) (*nats.Conn, error) {
	lo, hi := cfg.ConnectBackoffMin, cfg.ConnectBackoffMax
	if lo <= 0 {
		lo = 250 * time.Millisecond
	}
	if hi < lo {
		hi = max(lo, 10*time.Second)
	}
	connected := make(chan struct{})
	var (
		once    sync.Once
		mu      sync.Mutex
		lastErr string
	)
	conn := cfg.NATS
	if conn.Name == "" {
		conn.Name = "ibu-" + cfg.Name
	}
	opts := []nats.Option{
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(8 << 20),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := lo
			for i := 1; i < attempts && d < hi; i++ {
				d *= 2
			}
			return min(d, hi)
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			once.Do(func() { close(connected) })
			log.Info("connected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "error", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			mu.Lock()
			repeat := err.Error() == lastErr
			lastErr = err.Error()
			mu.Unlock()
			level := slog.LevelWarn
			if repeat {
				level = slog.LevelDebug
			}
			log.Log(ctx, level, "cannot reach NATS; retrying with backoff", "url", natsconn.Redact(conn.URL), "error", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{"error", err}
			if sub != nil {
				attrs = append(attrs, "subject", sub.Subject)
			}
			if errors.Is(err, nats.ErrPermissionViolation) {
				log.Error("NATS refused an operation: the credentials do not allow it", attrs...)
				return
			}
			log.Warn("NATS", attrs...)
		}),
		nats.PermissionErrOnSubscribe(true),
	}
	nc, err := conn.Connect(opts...)
	if err != nil {
		return nil, err
	}
	select {
	case <-connected:
		return nc, nil
	default:
	}
	log.Info("waiting for NATS", "url", natsconn.Redact(conn.URL))
	select {
	case <-connected:
		return nc, nil
	case <-ctx.Done():
		nc.Close()
		return nil, ctx.Err()
	}
}

// Health is the state /healthz and /readyz report: alive while the
// process serves them; ready once connected and SetReady(true), and not
// while the connection is down.
type Health struct {
	ready  atomic.Bool
	conn   atomic.Pointer[nats.Conn]
	mu     sync.Mutex
	reason string
}

// SetConn gives the connection whose state readiness follows.
func (h *Health) SetConn(nc *nats.Conn) { h.conn.Store(nc) }

// SetReady marks the service ready (topology ensured) or not.
func (h *Health) SetReady(ok bool) { h.ready.Store(ok) }

// SetNotReady records why the service cannot become ready.
func (h *Health) SetNotReady(reason string) {
	h.mu.Lock()
	h.reason = reason
	h.mu.Unlock()
}

// NotReady says why the service is not ready, "" when it is.
func (h *Health) NotReady() string {
	nc := h.conn.Load()
	switch {
	case nc == nil:
		return "not connected to NATS yet"
	case !nc.IsConnected():
		return "NATS connection " + nc.Status().String()
	case !h.ready.Load():
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.reason != "" {
			return h.reason
		}
		return "streams and buckets not ensured yet"
	}
	return ""
}

// Serve listens on addr and serves /healthz, /readyz and, when metrics is
// not nil, /metrics. It returns a function that stops the server and the
// address it listens on.
func (h *Health) Serve(addr string, metrics http.Handler, log *slog.Logger) (stop func(), bound string, err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := h.NotReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("%w: health endpoints on %s: %w", ErrConfig, addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health endpoints stopped", "error", err)
		}
	}()
	log.Info("health endpoints listening", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, l.Addr().String(), nil
}
