package ibuctl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/cli/dashboard"
)

// runDashboard serves the read-only web dashboard of a hub.
func runDashboard(ctx context.Context, io IO, args []string) error {
	fs := newFlags("dashboard", io)
	nf := addNATSFlags(fs, io)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on (loopback unless you say otherwise; the page is read-only and has no login)")
	batch := fs.Duration("batch", 250*time.Millisecond, "how often changes are sent to browsers")
	if err := parse(fs, args); err != nil {
		return err
	}
	nc, js, err := nf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("dashboard listen on %s: %w", *listen, err)
	}
	if !isLoopback(ln.Addr()) {
		fmt.Fprintf(io.Err, "warning: the dashboard listens on %s, beyond this machine; it has no login\n", ln.Addr())
	}
	log := slog.New(slog.NewTextHandler(io.Err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintf(io.Out, "dashboard: http://%s/ (Ctrl-C stops it)\n", ln.Addr())
	return serveDashboard(ctx, js, ln, dashboard.Options{Batch: *batch, Logger: log})
}

// serveDashboard follows the hub and serves the page on ln until ctx ends.
func serveDashboard(ctx context.Context, js jetstream.JetStream, ln net.Listener, o dashboard.Options) error {
	srv := dashboard.New(js, o)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- srv.Run(ctx) }()
	go func() { errs <- srv.Serve(ctx, ln) }()
	err := <-errs
	cancel()
	if err2 := <-errs; err == nil {
		err = err2
	}
	return err
}

// listenDashboard listens on addr, or on a free loopback port when addr's
// port is taken (the demo must not fail because 8080 is busy).
func listenDashboard(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		host, _, _ := net.SplitHostPort(addr)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return nil, fmt.Errorf("dashboard listen on %s: %w", addr, err)
	}
	return ln, nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func dashboardOptions(log *slog.Logger) dashboard.Options {
	return dashboard.Options{Logger: log}
}
