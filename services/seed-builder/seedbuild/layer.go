package seedbuild

import (
	"context"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/events"
)

// objectLayer is a layer whose compressed bytes are an object in the
// artifacts store; digests and sizes come from the capture. Each read
// streams the object again (the object store checks its SHA-256 at the
// end) and the registry checks the digest on upload, so nothing is kept on
// the seed-builder's disk.
type objectLayer struct {
	ctx      context.Context
	obs      jetstream.ObjectStore
	art      events.SeedArtifact
	digest   v1.Hash
	diffID   v1.Hash
	progress func(n int64)
}

func newObjectLayer(ctx context.Context, obs jetstream.ObjectStore, art events.SeedArtifact, progress func(int64)) (*objectLayer, error) {
	d, err := v1.NewHash(art.Digest)
	if err != nil {
		return nil, fmt.Errorf("artifact %s digest: %w", art.Role, err)
	}
	diff, err := v1.NewHash(art.DiffID)
	if err != nil {
		return nil, fmt.Errorf("artifact %s diff id: %w", art.Role, err)
	}
	return &objectLayer{ctx: ctx, obs: obs, art: art, digest: d, diffID: diff, progress: progress}, nil
}

func (l *objectLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *objectLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *objectLayer) Size() (int64, error)     { return l.art.SizeBytes, nil }
func (l *objectLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.art.MediaType), nil
}

// getTimeout bounds one read of an artifact. It must be set: the object
// store gives a Get without a deadline its default API timeout (5s) for
// the whole object, which a layer of some GB on a busy hub overruns.
const getTimeout = 2 * time.Hour

func (l *objectLayer) Compressed() (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(l.ctx, getTimeout)
	r, err := l.obs.Get(ctx, l.art.Object)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("get %s: %w", l.art.Object, err)
	}
	return &countingReader{r: r, progress: l.progress, cancel: cancel}, nil
}

func (l *objectLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{zr, rc}, nil
}

type countingReader struct {
	r        io.ReadCloser
	progress func(int64)
	cancel   context.CancelFunc
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.progress != nil {
		c.progress(int64(n))
	}
	return n, err
}

func (c *countingReader) Close() error {
	defer c.cancel()
	return c.r.Close()
}
