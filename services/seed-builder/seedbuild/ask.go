package seedbuild

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
)

// ask sends a capture task to the seed cluster's agent and waits for its
// answer about this build and mode on IBU_EVENTS, watching from before the
// task was sent.
func (b *build) ask(ctx context.Context, mode events.SeedCaptureMode, timeout time.Duration) (events.SeedCaptureCompleted, error) {
	var done events.SeedCaptureCompleted
	phase := events.SeedValidating
	if mode == events.CaptureFull {
		phase = events.SeedCapturing
	}
	task := events.SeedCaptureRequested{ClusterID: b.req.ClusterID, BuildID: b.req.BuildID, Mode: mode}
	if mode == events.CaptureFull {
		task.Bucket, task.Compression = bus.ObjectStoreSeedArtifacts, b.req.Compression
	}
	c, err := bus.Ask[events.SeedCaptureCompleted](ctx, b.s.js, b.s.pub, bus.Request{
		Source: "/services/seed-builder", Cluster: b.req.ClusterID, Data: task,
		ID:    fmt.Sprintf("%s.%s.%s", b.req.ClusterID, b.req.BuildID, mode),
		Since: b.s.cfg.Now().Add(-time.Second), Timeout: timeout,
	})
	var se *bus.ServiceError
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, bus.ErrNoAnswer):
		return done, fail(phase, ReasonSeedClusterNoAnswer, "the node agent of %s did not answer the %s task within %s", b.req.ClusterID, mode, timeout)
	case errors.As(err, &se):
		running := "the workloads run again"
		if f, ok := se.Answer.(*events.SeedCaptureFailed); ok && !f.WorkloadsRunning {
			running = "the workloads could NOT be restarted: look at the seed cluster"
		}
		return done, fail(phase, ReasonCaptureFailed, "%s on %s: %s: %s (%s)", mode, b.req.ClusterID, se.Reason, se.Message, running)
	case ctx.Err() != nil:
		return done, ctx.Err()
	}
	return done, fmt.Errorf("capture task: %w", err)
}

func (b *build) inspect(ctx context.Context) (events.SeedHostInventory, error) {
	c, err := b.ask(ctx, events.CaptureInspect, b.s.cfg.InspectTimeout)
	return c.Inventory, err
}

// capture has the agent capture its host and reads the capture manifest.
func (b *build) capture(ctx context.Context) ([]events.SeedArtifact, seedimage.CaptureManifest, error) {
	var m seedimage.CaptureManifest
	b.progress(ctx, events.SeedCapturing, "", "the seed cluster's agent captures its host", 0, 0, true)
	obs, err := b.s.js.ObjectStore(ctx, bus.ObjectStoreSeedArtifacts)
	if err != nil {
		return nil, m, fmt.Errorf("open %s: %w", bus.ObjectStoreSeedArtifacts, err)
	}
	b.objects = obs
	c, err := b.ask(ctx, events.CaptureFull, b.s.cfg.CaptureTimeout)
	if err != nil {
		return nil, m, err
	}
	raw, err := obs.GetBytes(ctx, c.InfoObject)
	if err != nil {
		return nil, m, fail(events.SeedCapturing, ReasonCaptureFailed, "read %s: %v", c.InfoObject, err)
	}
	if err := decodeStrict(raw, &m); err != nil {
		return nil, m, fail(events.SeedCapturing, ReasonCaptureFailed, "capture manifest %s: %v", c.InfoObject, err)
	}
	return c.Artifacts, m, nil
}
