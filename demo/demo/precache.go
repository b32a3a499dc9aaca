package demo

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ibu.dev/node-agent/host/sim"
	"ibu.dev/services/precache/pullplan"
	"ibu.dev/shared/telemetry"
)

// demoFleetPullLimit is the demo's fleet-wide budget of concurrent pulls
// from its registry.
const demoFleetPullLimit = 8

// startPrecache runs the precache service for the demo's fleet, and the
// blob store the simulated nodes share (each blob downloaded once for the
// whole fleet, hard-linked into every node's OCI layout). It stops with
// ctx.
func (d *demo) startPrecache(ctx context.Context, blobDir string) error {
	auth := &authn.Basic{Username: d.reg.User, Password: d.reg.Pass}
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return err
	}
	blobs, err := sim.NewBlobCache(blobDir, remote.WithAuth(auth))
	if err != nil {
		return err
	}
	d.blobs = blobs
	svc := pullplan.New(d.js, pullplan.Config{Name: "demo", Telemetry: telemetry.Telemetry{Logger: d.log, Tracer: d.tracer}, SeedOptions: d.seedAuth,
		Remote: []remote.Option{remote.WithAuth(auth)}, DefaultFleetLimit: demoFleetPullLimit})
	sub, err := svc.Start(ctx)
	if err != nil {
		return fmt.Errorf("precache service: %w", err)
	}
	context.AfterFunc(ctx, sub.Stop)
	d.say("precache", "service running: pull plans of only what each node lacks, shared layers first; fleet budget %d concurrent pulls from %s",
		demoFleetPullLimit, d.reg.Host())
	return nil
}

// precacheSummary says what precache cost the fleet.
func (d *demo) precacheSummary(nodes int) {
	if d.blobs == nil {
		return
	}
	d.say("precache", "%d nodes × %d images: the registry served %.1f MiB of blobs into the shared store (pulling every image in full on every node: %.0f MiB)",
		nodes, len(d.images.Images), mib(d.blobs.Fetched()), mib(d.images.NaiveBytes*int64(nodes)))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
