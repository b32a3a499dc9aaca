package pullplan

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"ibu.dev/shared/events"
)

// manifests reads image manifests (layers and sizes) from registries and
// keeps them: an image pinned by digest never changes, and a fleet plans
// the same few hundred images for every cluster.
type manifests struct {
	remote []remote.Option
	limit  int

	mu    sync.Mutex
	cache map[string]ImageInfo // key: arch + " " + ref
}

func newManifests(opts []remote.Option, limit int) *manifests {
	return &manifests{remote: opts, limit: limit, cache: map[string]ImageInfo{}}
}

// info reads one image's layers for arch (an index resolves to its
// linux/arch manifest).
func (m *manifests) info(ctx context.Context, ref, arch string) (ImageInfo, error) {
	key := arch + " " + ref
	m.mu.Lock()
	got, ok := m.cache[key]
	m.mu.Unlock()
	if ok {
		return got, nil
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("image %s: %w", ref, err)
	}
	opts := append([]remote.Option{remote.WithContext(ctx)}, m.remote...)
	if arch != "" {
		opts = append(opts, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
	}
	img, err := remote.Image(r, opts...)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("read manifest of %s: %w", ref, err)
	}
	mf, err := img.Manifest()
	if err != nil {
		return ImageInfo{}, fmt.Errorf("read manifest of %s: %w", ref, err)
	}
	info := ImageInfo{Ref: ref, Size: mf.Config.Size}
	for _, l := range mf.Layers {
		info.Layers = append(info.Layers, events.Layer{Digest: l.Digest.String(), SizeBytes: l.Size})
		info.Size += l.Size
	}
	m.mu.Lock()
	if len(m.cache) >= m.limit {
		clear(m.cache) // crude, and rare: a fleet plans few distinct images
	}
	m.cache[key] = info
	m.mu.Unlock()
	return info, nil
}

// infos reads every image's manifest with bounded parallelism. An image
// whose manifest cannot be read is kept without layers (the hub may not
// reach a site's mirror; the node's own pull reports the real reason), and
// its error is returned in errs.
func (m *manifests) infos(ctx context.Context, refs []string, arch string, parallel int) ([]ImageInfo, map[string]error) {
	out := make([]ImageInfo, len(refs))
	errs := map[string]error{}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, max(parallel, 1))
	)
	for i, ref := range refs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			info, err := m.info(ctx, ref, arch)
			if err != nil {
				mu.Lock()
				errs[ref] = err
				mu.Unlock()
				info = ImageInfo{Ref: ref}
			}
			out[i] = info
		})
	}
	wg.Wait()
	return out, errs
}
