// Command health runs one replica of ibu's health service; see package
// stability. Replicas share the task consumer.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"ibu.dev/services/health/stability"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/runner"
)

func main() {
	cfg := runner.Flags("health", flag.CommandLine, os.Getenv)
	reg := clusterkube.Flags(flag.CommandLine, os.Getenv)
	window := flag.Duration("window", stability.DefaultWindow, "stabilisation window when a request sets none")
	timeout := flag.Duration("timeout", stability.DefaultTimeout, "gate deadline when a request sets none")
	interval := flag.Duration("interval", stability.DefaultInterval, "time between check rounds")
	flag.Parse()
	runner.Main(cfg, func(ctx context.Context, s *runner.Service) error {
		clusters, err := clusterkube.Open(*reg)
		if err != nil {
			return fmt.Errorf("%w: %w", runner.ErrConfig, err)
		}
		return stability.New(s.JS, stability.Config{Clusters: clusters, Cluster: reg.LocalCluster, Window: *window, Timeout: *timeout,
			Interval: *interval, Telemetry: s.Telemetry}).Run(ctx)
	})
}
