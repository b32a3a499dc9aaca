// Package systemd implements host.Rebooter by asking systemd to reboot
// (`systemctl reboot`, or the host's own systemctl through a chroot from
// an agent container) and then waiting for the shutdown to stop the agent.
package systemd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"

	"ibu.dev/node-agent/host"
)

// Rebooter is the real host.Rebooter.
type Rebooter struct {
	command []string
	log     *slog.Logger
}

var _ host.Rebooter = (*Rebooter)(nil)

// Option configures a Rebooter.
type Option func(*Rebooter)

// WithCommand sets the reboot command; the default is
// "systemctl reboot". From an agent container with the host's / at /host:
// WithCommand("chroot", "/host", "systemctl", "reboot").
func WithCommand(argv ...string) Option {
	return func(r *Rebooter) {
		if len(argv) > 0 {
			r.command = append([]string(nil), argv...)
		}
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(r *Rebooter) {
		if l != nil {
			r.log = l
		}
	}
}

// New returns a Rebooter.
func New(opts ...Option) *Rebooter {
	r := &Rebooter{command: []string{"systemctl", "reboot"}, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Reboot runs the reboot command. When it fails Reboot returns its error
// (with the command and its trimmed stderr); otherwise it blocks until ctx
// ends (the shutdown stops the agent) and returns an error wrapping both
// host.ErrRebooting and ctx's error.
func (r *Rebooter) Reboot(ctx context.Context, reason string) error {
	r.log.InfoContext(ctx, "rebooting the host", "reason", reason, "command", r.command)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, r.command[0], r.command[1:]...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			return fmt.Errorf("reboot: %s: %w: %s", strings.Join(r.command, " "), err, msg)
		}
		return fmt.Errorf("reboot: %s: %w", strings.Join(r.command, " "), err)
	}
	r.log.InfoContext(ctx, "reboot command done; waiting for the shutdown")
	<-ctx.Done()
	return fmt.Errorf("reboot (%s): %w: %w", reason, host.ErrRebooting, context.Cause(ctx))
}
