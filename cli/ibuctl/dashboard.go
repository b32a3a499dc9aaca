package ibuctl

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

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
	return dashboard.Serve(ctx, js, ln, dashboard.Options{Batch: *batch, Logger: log})
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
