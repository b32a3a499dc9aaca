package runner

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"ibu.dev/shared/natsconn"
)

// Config is what every hub service takes from its flags and environment.
type Config struct {
	// Name is the service's name: OTEL service.name, the "service"
	// attribute of every log line and, after "ibu-", the NATS connection's
	// name unless NATS.Name is set.
	Name    string
	Version string

	// NATS is how to reach the hub.
	NATS natsconn.Config
	// StreamReplicas of the streams and buckets EnsureTopology creates.
	StreamReplicas int
	// SkipTopology leaves the streams and buckets alone (credentials without
	// stream administration rights); readiness then needs only the
	// connection.
	SkipTopology bool

	// HealthAddr is where /healthz, /readyz and /metrics listen ("" = no
	// HTTP server).
	HealthAddr string
	LogLevel   string
	LogFormat  string

	// Metrics, when set, is served on /metrics instead of the runner's own
	// Prometheus registry (Service.Meter is then a no-op provider).
	Metrics http.Handler
	// Global makes the runner's tracer and meter providers the process's
	// otel globals, which shared/bus uses by default; Main sets it, tests
	// that run several services in one process leave it off.
	Global bool
	// OnListen, when set, is told the health server's address (useful
	// with port 0).
	OnListen func(addr string)
	// Getenv reads OTEL_* for tracing (default os.Getenv).
	Getenv func(string) string

	// ConnectBackoff bounds the delay between connection attempts while
	// NATS is unreachable (default 250ms doubling up to 10s).
	ConnectBackoffMin, ConnectBackoffMax time.Duration
	// DrainTimeout bounds the drain of the connection at stop (default
	// 20s).
	DrainTimeout time.Duration
}

// Flags registers the common flags on fs, each defaulting to its
// environment variable read through getenv (nil = os.Getenv), and returns
// the Config they fill once fs is parsed.
func Flags(name string, fs *flag.FlagSet, getenv func(string) string) *Config {
	if getenv == nil {
		getenv = os.Getenv
	}
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	c := &Config{Name: name, Getenv: getenv}
	c.NATS.Register(fs, getenv)
	replicas, err := strconv.Atoi(env("IBU_STREAM_REPLICAS", "1"))
	if err != nil {
		replicas = 0 // refused by Validate
	}
	fs.IntVar(&c.StreamReplicas, "stream-replicas", replicas, "replicas of the streams and buckets (1 on one server, 3 on a cluster) ($IBU_STREAM_REPLICAS)")
	fs.BoolVar(&c.SkipTopology, "skip-topology", env("IBU_SKIP_TOPOLOGY", "") == "true", "do not create or update the streams and buckets ($IBU_SKIP_TOPOLOGY=true)")
	fs.StringVar(&c.HealthAddr, "health-addr", env("IBU_HEALTH_ADDR", ":8081"), "listen address of /healthz, /readyz and /metrics; empty: none ($IBU_HEALTH_ADDR)")
	fs.StringVar(&c.LogLevel, "log-level", env("IBU_LOG_LEVEL", "info"), "debug, info, warn or error ($IBU_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("IBU_LOG_FORMAT", "json"), "json or text ($IBU_LOG_FORMAT)")
	return c
}

// Validate reports the first setting that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("runner: the service has no name")
	case c.StreamReplicas < 1 || c.StreamReplicas > 5:
		return fmt.Errorf("--stream-replicas %d: want 1 to 5 (1 on one server, 3 on a cluster)", c.StreamReplicas)
	}
	return c.NATS.Validate()
}
