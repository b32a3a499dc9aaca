package builder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
	var subjects []string
	for _, t := range []string{events.TypeSeedCaptureCompleted, events.TypeSeedCaptureFailed} {
		s, err := events.SubjectFor(t, b.req.ClusterID)
		if err != nil {
			return done, err
		}
		subjects = append(subjects, s)
	}
	since := b.s.cfg.Now().Add(-time.Second)
	cons, err := b.s.js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return done, fmt.Errorf("watch capture answers: %w", err)
	}
	task := events.SeedCaptureRequested{ClusterID: b.req.ClusterID, BuildID: b.req.BuildID, Mode: mode}
	if mode == events.CaptureFull {
		task.Bucket, task.Compression = bus.ObjectStoreSeedArtifacts, b.req.Compression
	}
	e, err := events.New("/services/seed-builder", b.req.ClusterID, task)
	if err != nil {
		return done, err
	}
	e.SetID(fmt.Sprintf("%s.%s.%s", b.req.ClusterID, b.req.BuildID, mode))
	subject, err := events.SubjectFor(task.EventType(), b.req.ClusterID)
	if err != nil {
		return done, err
	}
	if _, err := b.s.pub.Publish(ctx, subject, e); err != nil {
		return done, fmt.Errorf("send capture task: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return done, fail(phase, ReasonSeedClusterNoAnswer, "the node agent of %s did not answer the %s task within %s", b.req.ClusterID, mode, timeout)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(min(left, 5*time.Second)))
		if err != nil {
			if ctx.Err() != nil {
				return done, ctx.Err()
			}
			// A fetch that times out on a loaded server (nats.ErrTimeout) is
			// no answer yet, like an empty one.
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				continue
			}
			return done, fmt.Errorf("wait for the capture answer: %w", err)
		}
		ans, err := bus.FromHeaders(msg.Headers(), msg.Data())
		if err != nil {
			continue
		}
		switch ans.Type() {
		case events.TypeSeedCaptureCompleted:
			c, err := events.DataAs[events.SeedCaptureCompleted](ans)
			if err != nil || c.BuildID != b.req.BuildID || c.Mode != mode {
				continue
			}
			return c, nil
		case events.TypeSeedCaptureFailed:
			f, err := events.DataAs[events.SeedCaptureFailed](ans)
			if err != nil || f.BuildID != b.req.BuildID || f.Mode != mode {
				continue
			}
			running := "the workloads run again"
			if !f.WorkloadsRunning {
				running = "the workloads could NOT be restarted: look at the seed cluster"
			}
			return done, fail(phase, ReasonCaptureFailed, "%s on %s: %s: %s (%s)", mode, b.req.ClusterID, f.Reason, f.Message, running)
		}
	}
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
