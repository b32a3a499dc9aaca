// Package natsembed runs nats-server with JetStream inside the current
// process: a single server on loopback for the demo and tests, or a small
// JetStream cluster whose nodes can be stopped and restarted to exercise
// failover. Every server keeps its JetStream data in file storage.
package natsembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultReadyTimeout bounds how long Start waits for a server to accept
// connections with JetStream enabled when ctx has no deadline.
const DefaultReadyTimeout = 15 * time.Second

// Config describes one embedded server.
type Config struct {
	// StoreDir holds JetStream's file storage. Required.
	StoreDir string
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port for clients; 0 picks a free port. Restart reuses the port chosen
	// the first time (see Server.Config).
	Port int
	// ServerName is the server's name; default derived by nats-server. It
	// must be distinct and stable per node in a cluster.
	ServerName string
	// MaxPayload is the largest message (headers plus payload) the server
	// accepts; 0 keeps the nats-server default of 1 MiB.
	MaxPayload int32
	// ReadyTimeout bounds the wait for readiness when ctx has no deadline;
	// default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Logger receives the server's log lines; nil discards them.
	Logger *slog.Logger
	// Debug also forwards the server's debug lines to Logger.
	Debug bool

	// ClusterName, ClusterPort and Routes make the server a node of a
	// cluster; StartCluster fills them. ClusterPort 0 picks a free port.
	ClusterName string
	ClusterPort int
	Routes      []string

	// Configure, when set, adjusts the server options last (operator mode
	// and an account resolver, TLS, ...); it runs at every (re)start.
	Configure func(*server.Options)
}

// Server is a running (or stopped) embedded nats-server.
type Server struct {
	mu  sync.Mutex
	cfg Config
	ns  *server.Server
}

// Start runs a server with JetStream on file storage in cfg.StoreDir and
// waits until it accepts connections and JetStream is enabled, within ctx's
// deadline or cfg.ReadyTimeout.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	s := &Server{cfg: cfg}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) options() *server.Options {
	c := s.cfg
	port := c.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	o := &server.Options{
		ServerName:            c.ServerName,
		Host:                  c.Host,
		Port:                  port,
		JetStream:             true,
		StoreDir:              c.StoreDir,
		MaxPayload:            c.MaxPayload,
		NoSigs:                true,
		NoLog:                 c.Logger == nil,
		Debug:                 c.Debug,
		DisableShortFirstPing: true,
	}
	if c.ClusterName != "" {
		cport := c.ClusterPort
		if cport == 0 {
			cport = server.RANDOM_PORT
		}
		o.Cluster = server.ClusterOpts{Name: c.ClusterName, Host: c.Host, Port: cport}
		for _, r := range c.Routes {
			o.Routes = append(o.Routes, server.RoutesFromStr(r)...)
		}
	}
	if c.Configure != nil {
		c.Configure(o)
	}
	return o
}

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil && s.ns.Running() {
		return errors.New("natsembed: server already running")
	}
	ns, err := server.NewServer(s.options())
	if err != nil {
		return fmt.Errorf("natsembed: new server: %w", err)
	}
	if s.cfg.Logger != nil {
		ns.SetLoggerV2(slogAdapter{s.cfg.Logger}, s.cfg.Debug, false, false)
	}
	ns.Start()

	deadline := time.Now().Add(s.cfg.ReadyTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	if !ns.ReadyForConnections(time.Until(deadline)) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("natsembed: server %s not ready for connections before deadline", s.cfg.ServerName)
	}
	if err := poll(ctx, deadline, ns.JetStreamEnabled); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("natsembed: waiting for JetStream on %s: %w", s.cfg.ServerName, err)
	}
	// Remember the ports actually bound so a restart reuses them.
	if a, ok := ns.Addr().(*net.TCPAddr); ok {
		s.cfg.Port = a.Port
	}
	if s.cfg.ClusterName != "" {
		if a := ns.ClusterAddr(); a != nil {
			s.cfg.ClusterPort = a.Port
		}
	}
	s.ns = ns
	return nil
}

// poll calls cond until it is true, ctx is done or the deadline passes.
func poll(ctx context.Context, deadline time.Time, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// URL is the client URL, nats://host:port.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "nats://" + net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
}

// Config returns the configuration with the ports actually bound, so that
// Start(ctx, s.Config()) after Shutdown brings the same server back.
func (s *Server) Config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Name is the server's name as nats-server reports it (the stream and
// consumer cluster info uses it).
func (s *Server) Name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		return s.ns.Name()
	}
	return s.cfg.ServerName
}

// NATS returns the underlying nats-server, nil before the first start.
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns
}

// Running reports whether the server is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns != nil && s.ns.Running()
}

// Shutdown stops the server and waits until it has shut down. It is safe to
// call more than once.
func (s *Server) Shutdown() {
	s.mu.Lock()
	ns := s.ns
	s.mu.Unlock()
	if ns == nil {
		return
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

// Restart shuts the server down if it runs and starts it again on the same
// store directory and ports.
func (s *Server) Restart(ctx context.Context) error {
	s.Shutdown()
	return s.start(ctx)
}

// slogAdapter forwards nats-server's logger calls to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
