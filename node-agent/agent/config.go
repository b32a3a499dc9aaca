package agent

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/journal"
	"ibu.dev/shared/events"
	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/telemetry"
)

// Config is what an agent knows about its cluster and how it behaves.
type Config struct {
	ClusterID    string
	Labels       map[string]string
	Version      string // the version the booted stateroot runs
	Fingerprint  fingerprint.Fingerprint
	AgentVersion string
	// WorkDir holds the seed's extracted ostree repository during Prep; it
	// must be outside the stateroots' /var (both stateroots see it).
	WorkDir string
	// KernelArgs for the new stateroot's deployment.
	KernelArgs []string
	// SeedOptions reach the seed's registry (credentials, transport).
	SeedOptions []seedimage.Option
	// Services says which hub services answer this cluster's tasks. A step
	// whose service is absent is skipped with a condition message saying
	// so, never silently: Backup/Restore without OADP content, or Health
	// where no health service runs.
	Services Services
	// HeartbeatInterval between heartbeats (default 10s).
	HeartbeatInterval time.Duration
	// InitMonitorTimeout: an upgrade not completed this long after the
	// pivot rolls back by itself unless auto-rollback is off (default 30m).
	InitMonitorTimeout time.Duration
	// ServiceTimeout bounds the wait for a service's answer (default 30m).
	ServiceTimeout time.Duration
	// PrecacheConcurrency is the number of parallel image pulls (default 10).
	PrecacheConcurrency int
	// PrecacheBestEffort lets Prep complete when images fail to pull; the
	// failures are listed in the status and the completed event.
	PrecacheBestEffort bool
	// RegistryMappings rewrite the seed's image references to this site's
	// mirrors (sent to the precache service with the request).
	RegistryMappings []events.RegistryMapping
	// PullAttempts per image before it counts as failed (default 5), with
	// exponential backoff from PullBackoff (default 2s, doubling, at most
	// a minute, ±20% jitter). A missing image fails at once.
	PullAttempts int
	PullBackoff  time.Duration
	// ProgressInterval bounds precache progress reports (status writes and
	// progress events) to one per interval (default 2s).
	ProgressInterval time.Duration
}

// Services lists the hub services that answer this cluster's tasks.
type Services struct {
	BackupRestore bool
	Health        bool
	// Precache: the precache service plans the pulls (only what the node
	// lacks, shared layers first, within the fleet's pull budget). Without
	// it the agent pulls the seed's list minus its inventory itself.
	Precache bool
}

// Deps are the agent's connections to the hub and the host.
type Deps struct {
	JS         jetstream.JetStream
	Stateroots host.Stateroots
	Rebooter   host.Rebooter
	Boot       host.BootIdentity
	Images     host.ImageStore
	Journal    *journal.Journal
	// Telemetry receives the agent's logs, spans and metrics (stage and
	// step durations, precache bytes and images); nil fields: see
	// telemetry.Telemetry.
	Telemetry telemetry.Telemetry
	Now       func() time.Time
	// StepHook, when set, is called at every step boundary with
	// "before:<Step>" and "after:<Step>"; an error stops the agent right
	// there, as a crash would. Crash-point tests use it.
	StepHook func(boundary string) error
}

func (c *Config) defaults() error {
	if err := events.ValidID(c.ClusterID); err != nil {
		return fmt.Errorf("cluster id: %w", err)
	}
	if c.WorkDir == "" {
		return errors.New("work directory is required")
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.InitMonitorTimeout <= 0 {
		c.InitMonitorTimeout = 30 * time.Minute
	}
	if c.ServiceTimeout <= 0 {
		c.ServiceTimeout = 30 * time.Minute
	}
	if c.PrecacheConcurrency <= 0 {
		c.PrecacheConcurrency = 10
	}
	if c.PullAttempts <= 0 {
		c.PullAttempts = 5
	}
	if c.PullBackoff <= 0 {
		c.PullBackoff = 2 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 2 * time.Second
	}
	if c.AgentVersion == "" {
		c.AgentVersion = "dev"
	}
	return nil
}

func (d *Deps) defaults() error {
	switch {
	case d.JS == nil:
		return errors.New("JetStream is required")
	case d.Stateroots == nil, d.Rebooter == nil, d.Boot == nil, d.Images == nil:
		return errors.New("host backends (stateroots, rebooter, boot identity, images) are required")
	case d.Journal == nil:
		return errors.New("journal is required")
	}
	d.Telemetry = d.Telemetry.Resolved()
	if d.Now == nil {
		d.Now = time.Now
	}
	return nil
}
