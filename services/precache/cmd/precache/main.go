// Command precache runs one replica of ibu's precache service; see package
// pullplan. Run several: they share one durable consumer and the fleet's
// pull budget in JetStream.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ibu.dev/services/precache/pullplan"
	"ibu.dev/shared/runner"
	"ibu.dev/shared/seedimage"
)

func main() {
	cfg := runner.Flags("precache", flag.CommandLine, os.Getenv)
	name := flag.String("name", os.Getenv("IBU_PRECACHE_NAME"), "replica name, unique per replica (default host-pid) ($IBU_PRECACHE_NAME)")
	authFile := flag.String("authfile", os.Getenv("IBU_REGISTRY_AUTHFILE"), "docker config.json with registry credentials (default: the docker/podman keychain) ($IBU_REGISTRY_AUTHFILE)")
	nodeConc := flag.Int("node-concurrency", 10, "parallel pulls per node unless the request asks otherwise")
	fleetDefault := flag.Int("fleet-pull-limit", 0, "concurrent pulls from any one registry across the fleet (0: unlimited)")
	var limits limitFlags
	flag.Var(&limits, "registry-pull-limit", "REGISTRY=N: concurrent pulls from REGISTRY across the fleet (repeatable)")
	bps := flag.Int64("max-bytes-per-sec", 0, "download rate per node (0: unlimited)")
	flag.Parse()
	if *name == "" {
		host, _ := os.Hostname()
		*name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	runner.Main(cfg, func(ctx context.Context, s *runner.Service) error {
		pc := pullplan.Config{Name: *name, Telemetry: s.Telemetry, NodeConcurrency: *nodeConc, DefaultFleetLimit: *fleetDefault,
			FleetLimits: limits, MaxBytesPerSec: *bps, Replicas: cfg.StreamReplicas}
		if *authFile != "" {
			kc, err := seedimage.AuthFileKeychain(*authFile)
			if err != nil {
				return fmt.Errorf("%w: --authfile: %w", runner.ErrConfig, err)
			}
			pc.SeedOptions = []seedimage.Option{seedimage.WithAuthFile(*authFile)}
			pc.Remote = []remote.Option{remote.WithAuthFromKeychain(kc)}
		} else {
			pc.Remote = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
		}
		return pullplan.New(s.JS, pc).Run(ctx)
	})
}

// limitFlags collects -registry-pull-limit REGISTRY=N.
type limitFlags map[string]int

func (l *limitFlags) String() string { return fmt.Sprint(map[string]int(*l)) }

func (l *limitFlags) Set(v string) error {
	reg, n, ok := strings.Cut(v, "=")
	limit, err := strconv.Atoi(n)
	if !ok || reg == "" || err != nil || limit < 0 {
		return fmt.Errorf("want REGISTRY=N, got %q", v)
	}
	if *l == nil {
		*l = limitFlags{}
	}
	(*l)[reg] = limit
	return nil
}
