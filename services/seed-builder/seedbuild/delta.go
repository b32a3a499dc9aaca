package seedbuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
)

// maxDeltaFraction: a delta whose changed entries hold more than this
// share of the new layer's file bytes is not worth a longer chain (every
// target pulls the whole chain); the role gets a full layer.
const maxDeltaFraction = 0.4

// previousSeed reads the seed the request's tag names now (manifest and
// config only), before the new tag is written; nil when there is none or
// it is not a seed this builder can chain onto.
func (b *build) previousSeed(ctx context.Context, opts []seedimage.Option) *seedimage.Seed {
	prev, err := seedimage.Pull(ctx, b.req.SeedImage, opts...)
	if err != nil {
		if !errors.Is(err, seedimage.ErrNotFound) {
			b.s.log.Info("no previous seed to build a delta on", "image", b.req.SeedImage, "error", err)
		}
		return nil
	}
	if !seedimage.SupportedFormat(prev.Info().FormatVersion) {
		return nil
	}
	return prev
}

// roleLayers returns the layers of one content role: the previous seed's
// chain for the role plus a delta layer holding only what the new
// capture changed (nothing new at all when it changed nothing), or the
// full layer when there is no previous chain to build on, the chain is at
// MaxChain, its compression differs, or the delta would be too large.
func (b *build) roleLayers(ctx context.Context, prev *seedimage.Seed, art events.SeedArtifact, full *objectLayer) ([]seedimage.RoleLayer, string, error) {
	role := seedimage.Role(art.Role)
	fullOnly := []seedimage.RoleLayer{{Role: role, Layer: full}}
	if prev == nil || !role.Chainable() {
		return fullOnly, "full: no previous seed", nil
	}
	chain, err := prev.Chain(role)
	if err != nil {
		return fullOnly, fmt.Sprintf("full: previous seed: %v", err), nil
	}
	if len(chain) >= seedimage.MaxChain {
		return fullOnly, fmt.Sprintf("full: the previous chain has %d layers", len(chain)), nil
	}
	layers := make([]v1.Layer, 0, len(chain))
	reuse := make([]seedimage.RoleLayer, 0, len(chain)+1)
	for _, l := range chain {
		if string(l.Descriptor.MediaType) != art.MediaType {
			return fullOnly, "full: the previous chain has another compression", nil
		}
		if l.Descriptor.Digest.String() == art.Digest && len(chain) == 1 {
			return fullOnly, "unchanged", nil // the same full layer: reused as it is
		}
		layers = append(layers, l.Layer)
		reuse = append(reuse, seedimage.RoleLayer{Role: role, Layer: l.Layer})
	}
	// Tar headers and content digests of the previous chain: downloads from
	// the registry, nothing uploaded.
	ix, err := seedimage.IndexChain(ctx, layers)
	if errors.Is(err, seedimage.ErrNoDelta) {
		return fullOnly, fmt.Sprintf("full: %v", err), nil
	} else if err != nil {
		return nil, "", fmt.Errorf("read the previous %s chain: %w", role, err)
	}
	plan, err := b.readArtifact(ctx, art, func(r io.Reader) (*seedimage.DeltaPlan, error) {
		return seedimage.PlanDelta(ctx, ix, r)
	})
	if errors.Is(err, seedimage.ErrNoDelta) {
		return fullOnly, fmt.Sprintf("full: %v", err), nil
	} else if err != nil {
		return nil, "", fmt.Errorf("compare the %s capture with the previous seed: %w", role, err)
	}
	if plan.Empty() {
		return reuse, fmt.Sprintf("previous chain of %d, unchanged", len(chain)), nil
	}
	if float64(plan.ChangedBytes) > maxDeltaFraction*float64(plan.Bytes) {
		return fullOnly, fmt.Sprintf("full: %d of %d bytes changed", plan.ChangedBytes, plan.Bytes), nil
	}
	delta, err := b.putDelta(ctx, art, plan)
	if err != nil {
		return nil, "", fmt.Errorf("write the %s delta: %w", role, err)
	}
	l, err := newObjectLayer(ctx, b.objects, delta, full.progress)
	if err != nil {
		return nil, "", err
	}
	why := fmt.Sprintf("delta on a chain of %d: %d changed entries (%d bytes), %d deleted, %d bytes compressed",
		len(chain), plan.ChangedEntries, plan.ChangedBytes, plan.Deleted(), delta.SizeBytes)
	return append(reuse, seedimage.RoleLayer{Role: role, Layer: l}), why, nil
}

// readArtifact streams the artifact's uncompressed tar into read.
func (b *build) readArtifact(ctx context.Context, art events.SeedArtifact, read func(io.Reader) (*seedimage.DeltaPlan, error)) (*seedimage.DeltaPlan, error) {
	gctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	r, err := b.objects.Get(gctx, art.Object)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", art.Object, err)
	}
	defer r.Close()
	zr, err := seedimage.Decompress(r, art.MediaType)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", art.Object, err)
	}
	defer zr.Close()
	p, err := read(zr)
	if err != nil {
		return nil, err
	}
	// Drain the rest, so that the object store's SHA-256 check runs.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("read %s: %w", art.Object, err)
	}
	return p, nil
}

// putDelta writes the delta layer into the object store, beside the
// build's artifacts (deleted with them), compressed as the full layer is,
// hashing its tar (diff ID) and compressed bytes (digest) on the way.
func (b *build) putDelta(ctx context.Context, art events.SeedArtifact, plan *seedimage.DeltaPlan) (events.SeedArtifact, error) {
	name := b.req.BuildID + "/delta-" + art.Role
	pr, pw := io.Pipe()
	diff, blob := &hashCounter{h: sha256.New()}, &hashCounter{h: sha256.New()}
	go func() {
		zw, err := seedimage.Compress(io.MultiWriter(blob, pw), art.MediaType)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		_, err = b.readArtifact(ctx, art, func(r io.Reader) (*seedimage.DeltaPlan, error) {
			return plan, plan.WriteDelta(ctx, io.MultiWriter(diff, zw), r)
		})
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	_, err := b.objects.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: 512 << 10}}, pr)
	pr.CloseWithError(err) // stops the producer if Put gave up first
	if err != nil {
		return events.SeedArtifact{}, fmt.Errorf("put %s: %w", name, err)
	}
	return events.SeedArtifact{Role: art.Role, Object: name, MediaType: art.MediaType,
		Digest: blob.digest(), SizeBytes: blob.n, DiffID: diff.digest(), UncompressedSize: diff.n}, nil
}

type hashCounter struct {
	h hash.Hash
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *hashCounter) digest() string { return "sha256:" + hex.EncodeToString(c.h.Sum(nil)) }
