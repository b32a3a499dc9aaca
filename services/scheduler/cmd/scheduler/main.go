// Command scheduler runs one replica of ibu's fleet scheduler; see package
// rollout. Run several: plans are owned by one replica at a time.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"ibu.dev/services/scheduler/rollout"
	"ibu.dev/shared/runner"
)

func main() {
	cfg := runner.Flags("scheduler", flag.CommandLine, os.Getenv)
	name := flag.String("name", os.Getenv("IBU_SCHEDULER_NAME"), "replica name, unique per replica (default host-pid) ($IBU_SCHEDULER_NAME)")
	lease := flag.Duration("lease-ttl", 15*time.Second, "how long a replica owns a plan without renewing it")
	flag.Parse()
	runner.Main(cfg, func(ctx context.Context, s *runner.Service) error {
		return rollout.New(s.JS, rollout.Config{Name: *name, LeaseTTL: *lease, Telemetry: s.Telemetry}).Run(ctx)
	})
}
