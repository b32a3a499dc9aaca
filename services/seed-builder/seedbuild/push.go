package seedbuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/state"
)

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// buildAndPush assembles the image, pushes it by digest, reads it back and
// then writes the tag: a failure at any point leaves the tag where it was.
func (b *build) buildAndPush(ctx context.Context, arts []events.SeedArtifact, m seedimage.CaptureManifest, opts []seedimage.Option) (events.SeedBuildCompleted, error) {
	var res events.SeedBuildCompleted
	b.progress(ctx, events.SeedBuilding, "", "assembling the seed image", 0, 0, true)
	var content []seedimage.RoleLayer
	var total int64
	// The seed the tag names now, read before the new tag is written: each
	// content role chains a delta onto its layers when that pays.
	prev := b.previousSeed(ctx, opts)
	for _, a := range arts {
		role, size := a.Role, a.SizeBytes
		var done atomic.Int64 // remote.Write uploads layers in parallel
		l, err := newObjectLayer(ctx, b.objects, a, func(n int64) {
			b.progress(ctx, events.SeedPushing, role, "", done.Add(n), size, false)
		})
		if err != nil {
			return res, fail(events.SeedBuilding, ReasonBuildFailed, "%v", err)
		}
		if prev != nil {
			b.progress(ctx, events.SeedBuilding, role, "comparing the "+role+" layer with the previous seed", 0, 0, true)
		}
		ls, why, err := b.roleLayers(ctx, prev, a, l)
		if err != nil {
			return res, fail(events.SeedBuilding, ReasonBuildFailed, "%v", err)
		}
		b.s.log.Info("seed layer", "build", b.req.BuildID, "role", role, "layers", len(ls), "how", why)
		content = append(content, ls...)
		total += a.SizeBytes
	}
	img, err := seedimage.Assemble(m.Info, m.Images, content, seedimage.Metadata{EtcDeletions: m.EtcDeletions})
	if err != nil {
		return res, fail(events.SeedBuilding, ReasonBuildFailed, "%v", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return res, fail(events.SeedBuilding, ReasonBuildFailed, "%v", err)
	}
	tag, err := name.NewTag(b.req.SeedImage)
	if err != nil {
		return res, fail(events.SeedBuilding, ReasonInvalidImageReference, "%v", err)
	}
	byDigest := tag.Context().Digest(digest.String())
	ropts, err := seedimage.RemoteOptions(ctx, opts...)
	if err != nil {
		return res, fail(events.SeedPushing, ReasonPushFailed, "%v", err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		return res, fail(events.SeedBuilding, ReasonBuildFailed, "%v", err)
	}
	reused := 0
	var layerDigests []string
	for _, l := range manifest.Layers {
		layerDigests = append(layerDigests, l.Digest.String())
		if ok, err := seedimage.BlobExists(ctx, tag.Context().String(), l.Digest, opts...); err == nil && ok {
			reused++
		}
	}
	b.progress(ctx, events.SeedPushing, "", fmt.Sprintf("pushing %s (%d of %d layers already in the repository)", byDigest, reused, len(manifest.Layers)), 0, total, true)
	// remote.Write uploads only the blobs the repository lacks; by digest,
	// so no tag moves yet.
	if err := remote.Write(byDigest, img, ropts...); err != nil {
		return res, fail(events.SeedPushing, ReasonPushFailed, "%v", err)
	}
	b.progress(ctx, events.SeedVerifying, "", "reading the manifest and config back", 0, 0, true)
	if err := verifyPushed(ctx, byDigest.String(), img, opts); err != nil {
		return res, fail(events.SeedVerifying, ReasonVerifyFailed, "%v", err)
	}
	if err := remote.Tag(tag, img, ropts...); err != nil {
		return res, fail(events.SeedPushing, ReasonPushFailed, "tag %s: %v", tag, err)
	}
	var size int64
	for _, l := range manifest.Layers {
		size += l.Size
	}
	size += manifest.Config.Size
	return events.SeedBuildCompleted{
		ClusterID: b.req.ClusterID, BuildID: b.req.BuildID, SeedImage: b.req.SeedImage, Digest: digest.String(),
		SeedVersion: m.Info.Version, Layers: len(manifest.Layers), ReusedLayers: reused, SizeBytes: size,
		DurationMs: b.s.cfg.Now().Sub(b.start).Milliseconds(), Images: len(m.Images), LayerDigests: layerDigests,
	}, nil
}

// verifyPushed reads the pushed manifest and config back by digest and
// compares them with what was built.
func verifyPushed(ctx context.Context, ref string, img v1.Image, opts []seedimage.Option) error {
	got, err := seedimage.Pull(ctx, ref, opts...)
	if err != nil {
		return err
	}
	want, err := seedimage.New(img)
	if err != nil {
		return err
	}
	gm, err := got.Manifest()
	if err != nil {
		return err
	}
	wm, err := img.Manifest()
	if err != nil {
		return err
	}
	if gm.Config.Digest != wm.Config.Digest || len(gm.Layers) != len(wm.Layers) {
		return fmt.Errorf("the registry's manifest differs from the one pushed")
	}
	for i := range gm.Layers {
		if gm.Layers[i].Digest != wm.Layers[i].Digest || !maps.Equal(gm.Layers[i].Annotations, wm.Layers[i].Annotations) {
			return fmt.Errorf("layer %d differs: %s, pushed %s", i, gm.Layers[i].Digest, wm.Layers[i].Digest)
		}
	}
	if gi, wi := got.Info(), want.Info(); gi.Version != wi.Version || gi.OstreeCommit != wi.OstreeCommit {
		return fmt.Errorf("the registry's seed info differs from the one pushed")
	}
	if !slices.Equal(got.PrecacheImages(), want.PrecacheImages()) {
		return fmt.Errorf("the registry's image list differs from the one pushed")
	}
	return nil
}

// progress records the build's phase and bytes, and emits a progress
// event; byte progress at most every 250 ms unless force.
func (b *build) progress(ctx context.Context, phase events.SeedBuildPhase, layer, msg string, done, total int64, force bool) {
	b.mu.Lock()
	b.phase = phase
	now := time.Now()
	if !force && now.Sub(b.last) < 250*time.Millisecond && done != total {
		b.mu.Unlock()
		return
	}
	b.last = now
	b.mu.Unlock()
	ev := events.SeedBuildProgress{ClusterID: b.req.ClusterID, BuildID: b.req.BuildID, Phase: phase, Message: msg,
		BytesDone: done, BytesTotal: total, Layer: layer}
	if err := b.emit(ctx, ev); err != nil {
		b.s.log.Warn("progress event", "error", err)
	}
	b.record(ctx, func(r *state.SeedBuild) {
		r.Phase, r.Layer, r.BytesDone, r.BytesTotal = phase, layer, done, total
		if msg != "" {
			r.Message = msg
		}
	})
}

func (b *build) emit(ctx context.Context, data events.Data) error {
	return b.s.pub.Emit(ctx, "/services/seed-builder", b.req.ClusterID, data)
}
