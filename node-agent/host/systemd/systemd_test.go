package systemd_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/systemd"
)

func TestReboot(t *testing.T) {
	t.Run("blocks until ctx ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		waiting := make(chan struct{})
		logger := slog.New(handlerFunc(func(r slog.Record) {
			if strings.HasPrefix(r.Message, "reboot command done") {
				close(waiting)
			}
		}))
		done := make(chan error, 1)
		r := systemd.New(systemd.WithCommand("true"), systemd.WithLogger(logger))
		go func() { done <- r.Reboot(ctx, "pivot") }()
		select {
		case <-waiting:
		case err := <-done:
			t.Fatalf("Reboot returned before ctx ended: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("Reboot returned before ctx ended: %v", err)
		default:
		}
		cancel()
		err := <-done
		if !errors.Is(err, host.ErrRebooting) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want ErrRebooting and context.Canceled", err)
		}
	})
	t.Run("command fails", func(t *testing.T) {
		r := systemd.New(systemd.WithCommand("sh", "-c", "echo 'Failed to reboot: access denied' >&2; exit 3"))
		err := r.Reboot(t.Context(), "pivot")
		if err == nil || errors.Is(err, host.ErrRebooting) {
			t.Fatalf("err = %v, want the command's failure", err)
		}
		for _, want := range []string{"exit status 3", "access denied", "sh -c"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
	t.Run("missing command", func(t *testing.T) {
		r := systemd.New(systemd.WithCommand("/nonexistent/systemctl", "reboot"))
		if err := r.Reboot(context.Background(), "pivot"); err == nil {
			t.Fatal("want an error")
		}
	})
}

// handlerFunc is a slog.Handler calling a function for each record.
type handlerFunc func(slog.Record)

func (h handlerFunc) Enabled(context.Context, slog.Level) bool      { return true }
func (h handlerFunc) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h handlerFunc) WithGroup(string) slog.Handler                 { return h }

func TestBootIDReadsTheKernelsID(t *testing.T) {
	id, err := systemd.BootID{}.BootID(t.Context())
	if err != nil || len(id) != 36 {
		t.Fatalf("boot id %q, %v", id, err)
	}
	again, _ := systemd.BootID{}.BootID(t.Context())
	if again != id {
		t.Fatalf("boot id changed within one boot: %s then %s", id, again)
	}
	if _, err := (systemd.BootID{Path: t.TempDir() + "/missing"}).BootID(t.Context()); err == nil {
		t.Fatal("missing file accepted")
	}
}
