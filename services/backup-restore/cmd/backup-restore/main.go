// Command backup-restore runs one replica of ibu's backup-restore service;
// see package oadp. Replicas share the task consumer.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"ibu.dev/services/backup-restore/dataprotection"
	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/runner"
)

func main() {
	cfg := runner.Flags("backup-restore", flag.CommandLine, os.Getenv)
	reg := clusterkube.Flags(flag.CommandLine, os.Getenv)
	wait := flag.Duration("wait-timeout", dataprotection.DefaultWaitTimeout, "deadline of each wait for a Velero Backup or Restore")
	flag.Parse()
	runner.Main(cfg, func(ctx context.Context, s *runner.Service) error {
		clusters, err := clusterkube.Open(*reg)
		if err != nil {
			return fmt.Errorf("%w: %w", runner.ErrConfig, err)
		}
		return dataprotection.New(s.JS, dataprotection.Config{Clusters: clusters, Cluster: reg.LocalCluster, WaitTimeout: *wait, Telemetry: s.Telemetry}).Run(ctx)
	})
}
