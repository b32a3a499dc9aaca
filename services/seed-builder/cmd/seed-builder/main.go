// Command seed-builder runs one replica of ibu's seed-builder; see package
// seedbuild.
package main

import (
	"context"
	"flag"
	"os"

	"ibu.dev/services/seed-builder/seedbuild"
	"ibu.dev/shared/runner"
)

func main() {
	cfg := runner.Flags("seed-builder", flag.CommandLine, os.Getenv)
	secrets := flag.String("secrets-dir", os.Getenv("IBU_SECRETS_DIR"), "where push Secrets are mounted as <namespace>/<name>/.dockerconfigjson ($IBU_SECRETS_DIR)")
	namespace := flag.String("namespace", envOr("POD_NAMESPACE", "ibu-system"), "default namespace of Secret references ($POD_NAMESPACE)")
	flag.Parse()
	runner.Main(cfg, func(ctx context.Context, s *runner.Service) error {
		return seedbuild.New(s.JS, seedbuild.Config{Telemetry: s.Telemetry, SecretsDir: *secrets, Namespace: *namespace}).Run(ctx)
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
