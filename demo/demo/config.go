package demo

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// ErrUsage marks a configuration mistake: the caller prints it and exits 2.
var ErrUsage = errors.New("usage")

// Config is what the demo runs: the fleet's size and delays, where its
// traces and dashboard go, and where it prints.
type Config struct {
	// Clusters is the number of simulated clusters (3 to 500).
	Clusters int
	// RebootDelay is a simulated reboot's time (a real one takes minutes).
	RebootDelay time.Duration
	// PullDelay is the simulated time to pull one container image.
	PullDelay time.Duration
	// FailureRate is the share of the clusters (0 to 1) whose image pulls
	// fail in Prep.
	FailureRate float64
	// Traces is the file the agents' and the scheduler's spans go to.
	Traces string
	// Dashboard is the live dashboard's address (a free port if taken;
	// empty: none).
	Dashboard string
	// KeepRunning leaves the hub running after the demo, until ctx ends.
	KeepRunning bool
	// Out gets the demo's account, Err the components' errors.
	Out, Err io.Writer
}

// Flags registers the demo's flags on fs, with their defaults, into the
// returned Config (Out and Err left for the caller).
func Flags(fs *flag.FlagSet) *Config {
	c := &Config{}
	fs.IntVar(&c.Clusters, "clusters", 20, "number of simulated clusters")
	fs.BoolVar(&c.KeepRunning, "keep-running", false, "leave the hub running after the demo and print its URL")
	fs.DurationVar(&c.RebootDelay, "reboot-delay", 300*time.Millisecond, "simulated reboot time (a real one takes minutes)")
	fs.DurationVar(&c.PullDelay, "pull-delay", 2*time.Millisecond, "simulated time to pull one container image")
	fs.Float64Var(&c.FailureRate, "failure-rate", 0, "share of the clusters (0 to 1) whose image pulls fail in Prep")
	fs.StringVar(&c.Traces, "traces", filepath.Join(os.TempDir(), "ibu-demo-traces.json"), "file the spans of the agents and the scheduler are written to (OpenTelemetry stdout exporter format)")
	fs.StringVar(&c.Dashboard, "dashboard", "127.0.0.1:8080", "address of the live dashboard (a free port if taken; empty: none)")
	return c
}

// Validate reports a Config the demo cannot run, as ErrUsage.
func (c Config) Validate() error {
	if c.Clusters < 3 || c.Clusters > 500 {
		return fmt.Errorf("%w: --clusters must be between 3 and 500", ErrUsage)
	}
	if c.FailureRate < 0 || c.FailureRate > 1 {
		return fmt.Errorf("%w: --failure-rate must be between 0 and 1", ErrUsage)
	}
	return nil
}
