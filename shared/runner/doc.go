// Package runner is the common main of ibu's hub services: flags with
// environment fallbacks (NATS URL, credentials, TLS CA, stream replicas,
// health address, log level and format; tracing from OTEL_*), a JSON slog
// logger, a NATS connection that retries with backoff while the hub is
// unreachable, the JetStream topology, an HTTP server with /healthz,
// /readyz and an optional /metrics, and a clean stop on SIGTERM (the
// service's context is cancelled, then the connection is drained).
//
// A service's main is a few lines:
//
//	func main() {
//		cfg := runner.Flags("precache", flag.CommandLine, os.Getenv)
//		workers := flag.Int("workers", 4, "...") // the service's own flags
//		flag.Parse()
//		runner.Main(cfg, func(ctx context.Context, s *runner.Service) error {
//			return precache.New(s.JS, precache.Config{Telemetry: telemetry.Telemetry{Logger: s.Log}}).Run(ctx)
//		})
//	}
//
// Set cfg.Metrics (an http.Handler) before Main to serve /metrics. Run is
// Main without the signal handling and exit, for tests.
package runner
