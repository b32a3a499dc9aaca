// Package simspoke runs a node agent on a simulated host the way a real
// spoke would live: when the agent asks for a reboot, the host "boots" into
// its default deployment after a (scaled) delay and the agent starts again,
// reading its journal. The agent's sim backend (agentcmd), tests and
// demo/fleet use it.
package simspoke

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/sim"
	"ibu.dev/node-agent/journal"
	"ibu.dev/shared/telemetry"
)

// Spoke is one simulated cluster: its host, image store and agent settings.
type Spoke struct {
	Config agent.Config
	Host   *sim.Host
	Images *sim.Images
	// Store, when set, is the image store instead of Images (a
	// sim.OCIImages pulling real images through a shared blob cache).
	Store       host.ImageStore
	JournalDir  string
	RebootDelay time.Duration
	Logger      *slog.Logger
	// StepHook is passed to every agent incarnation (crash points).
	StepHook func(boundary string) error
	// Tracer receives the agent's spans (nil: none).
	Tracer trace.TracerProvider
	// Meter receives the agent's metrics (nil: none).
	Meter metric.MeterProvider
	// Boots counts the simulated reboots.
	Boots int
}

// New makes a spoke whose host keeps its files (journal, seed work, /etc
// and /var of stateroots) under dir.
func New(cfg agent.Config, dir string, initialStateroot string) *Spoke {
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(dir, "work")
	}
	return &Spoke{
		Config:     cfg,
		Host:       sim.NewHost(initialStateroot, cfg.Version, sim.WithDir(filepath.Join(dir, "sysroot"))),
		Images:     sim.NewImages(0, 0),
		JournalDir: filepath.Join(dir, "journal"),
		Logger:     slog.Default(),
	}
}

// Once runs one incarnation of the agent until it stops: ctx ends (nil),
// it asks for a reboot (host.ErrRebooting), or it fails.
func (s *Spoke) Once(ctx context.Context, js jetstream.JetStream) error {
	j, err := journal.Open(s.JournalDir)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	var images host.ImageStore = s.Images
	if s.Store != nil {
		images = s.Store
	}
	a, err := agent.New(s.Config, agent.Deps{
		JS: js, Stateroots: s.Host.Stateroots(), Rebooter: s.Host.Rebooter(s.RebootDelay),
		Boot: s.Host, Images: images, Journal: j, StepHook: s.StepHook,
		Telemetry: telemetry.Telemetry{Logger: s.Logger, Tracer: s.Tracer, Meter: s.Meter},
	})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// Run runs the agent through every reboot until ctx ends or the agent
// fails for another reason.
func (s *Spoke) Run(ctx context.Context, js jetstream.JetStream) error {
	for {
		err := s.Once(ctx, js)
		if !errors.Is(err, host.ErrRebooting) {
			return err
		}
		if err := s.reboot(ctx); err != nil {
			return err
		}
	}
}

func (s *Spoke) reboot(ctx context.Context) error {
	if s.RebootDelay > 0 {
		t := time.NewTimer(s.RebootDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	s.Host.Boot()
	s.Boots++
	return nil
}

// Reboot "boots" the host now, for harnesses that drive Once themselves.
func (s *Spoke) Reboot() { s.Host.Boot(); s.Boots++ }
