package seedbuild

import (
	"context"
	"fmt"
	"strings"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

// record updates the build's record; a failure to record is logged, not
// fatal: the events carry the same facts.
func (b *build) record(ctx context.Context, fn func(r *state.SeedBuild)) {
	now := b.s.cfg.Now().UTC()
	_, _, err := bus.UpdateJSON(ctx, b.s.builds, b.req.BuildID, func(r *state.SeedBuild, _ bool) error {
		fn(r)
		r.Updated = now
		return nil
	})
	if err != nil {
		b.s.log.Warn("record build", "build", b.req.BuildID, "error", err)
	}
}

func (b *build) finishFailed(ctx context.Context, f *failure) error {
	msg := f.err.Error()
	if len(msg) > 4000 {
		msg = msg[:4000]
	}
	if strings.TrimSpace(msg) == "" {
		msg = f.reason
	}
	ev := events.SeedBuildFailed{ClusterID: b.req.ClusterID, BuildID: b.req.BuildID, Phase: f.phase, Reason: f.reason, Message: msg}
	if err := b.emit(ctx, ev); err != nil {
		return fmt.Errorf("publish failed event: %w", err)
	}
	now := b.s.cfg.Now().UTC()
	b.record(ctx, func(r *state.SeedBuild) {
		r.State, r.Phase, r.Reason, r.Message, r.Finished = state.SeedBuildFailed, f.phase, f.reason, msg, &now
	})
	return nil
}

func (b *build) finishCompleted(ctx context.Context, res events.SeedBuildCompleted) error {
	if err := b.emit(ctx, res); err != nil {
		return fmt.Errorf("publish completed event: %w", err)
	}
	now := b.s.cfg.Now().UTC()
	b.record(ctx, func(r *state.SeedBuild) {
		r.State, r.Phase, r.Reason, r.Finished, r.Result = state.SeedBuildCompleted, events.SeedVerifying, "", &now, &res
		r.Message = "pushed " + res.SeedImage + "@" + res.Digest
	})
	return nil
}
