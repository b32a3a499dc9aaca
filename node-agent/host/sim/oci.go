package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"ibu.dev/node-agent/host"
)

// BlobCache is a content-addressed blob store (an OCI layout's
// blobs/sha256) shared by every simulated node of a process: a blob is
// fetched from its registry once, whichever node asks first, and nodes
// hard-link it into their own layouts, so a simulated fleet pulls real
// images from a real registry while using the disk of one node.
type BlobCache struct {
	dir    string
	remote []remote.Option

	mu       sync.Mutex
	inflight map[string]*fetch
	fetched  int64 // blob bytes downloaded from registries
}

// Fetched is how many blob bytes the cache downloaded from registries.
func (c *BlobCache) Fetched() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetched
}

type fetch struct {
	done chan struct{}
	err  error
}

// NewBlobCache keeps blobs under dir. opts reach the registries (auth,
// transport); go-containerregistry's own retries are turned off, so a
// failed request fails the pull and the caller's retry policy decides.
func NewBlobCache(dir string, opts ...remote.Option) (*BlobCache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("blob cache: %w", err)
	}
	base := []remote.Option{remote.WithRetryBackoff(remote.Backoff{Steps: 1}), remote.WithRetryStatusCodes()}
	return &BlobCache{dir: dir, remote: append(base, opts...), inflight: map[string]*fetch{}}, nil
}

func blobPath(root string, d v1.Hash) string {
	return filepath.Join(root, "blobs", d.Algorithm, d.Hex)
}

// ensure makes the blob d of repo present in the cache, fetching it once
// however many callers ask at the same time; progress (may be nil) gets
// the bytes as they arrive, for the caller that fetches.
func (c *BlobCache) ensure(ctx context.Context, repo name.Repository, d v1.Hash, progress host.ProgressFunc) error {
	path := blobPath(c.dir, d)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		c.mu.Lock()
		f, busy := c.inflight[d.String()]
		if !busy {
			f = &fetch{done: make(chan struct{})}
			c.inflight[d.String()] = f
		}
		c.mu.Unlock()
		if busy {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-f.done:
			}
			if f.err != nil && !errors.Is(f.err, context.Canceled) {
				return f.err
			}
			continue // fetched (or the fetcher gave up): look again
		}
		f.err = c.download(ctx, repo, d, path, progress)
		c.mu.Lock()
		delete(c.inflight, d.String())
		c.mu.Unlock()
		close(f.done)
		return f.err
	}
}

// download streams the blob into a temporary file, checks its digest and
// renames it into place: a blob in the cache is always complete.
func (c *BlobCache) download(ctx context.Context, repo name.Repository, d v1.Hash, path string, progress host.ProgressFunc) error {
	l, err := remote.Layer(repo.Digest(d.String()), append([]remote.Option{remote.WithContext(ctx)}, c.remote...)...)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetch blob %s from %s: %w", d, repo, classify(err))
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fetch-*")
	if err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h, progressWriter(progress)), rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch blob %s from %s: %w", d, repo, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return fmt.Errorf("blob %s from %s: digest mismatch (got sha256:%s)", d, repo, got)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("blob cache: %w", err)
	}
	if fi, err := os.Stat(path); err == nil {
		c.mu.Lock()
		c.fetched += fi.Size()
		c.mu.Unlock()
	}
	return nil
}

// readManifest returns the manifest blob d: from the cache when a node
// fetched it before (a digest names one manifest forever), else from repo.
func (c *BlobCache) readManifest(ctx context.Context, repo name.Repository, d v1.Hash) ([]byte, types.MediaType, error) {
	path := blobPath(c.dir, d)
	if b, err := os.ReadFile(path); err == nil {
		var m struct {
			MediaType types.MediaType `json:"mediaType"`
		}
		if json.Unmarshal(b, &m) == nil {
			return b, m.MediaType, nil
		}
	}
	desc, err := remote.Get(repo.Digest(d.String()), append([]remote.Option{remote.WithContext(ctx)}, c.remote...)...)
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s@%s: %w", repo, d, classify(err))
	}
	if desc.Digest != d {
		return nil, "", fmt.Errorf("manifest %s@%s: registry answered %s", repo, d, desc.Digest)
	}
	if err := writeAtomic(path, desc.Manifest); err != nil {
		return nil, "", fmt.Errorf("blob cache: %w", err)
	}
	return desc.Manifest, desc.MediaType, nil
}

// classify marks the registry answers a retry cannot change.
func classify(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch terr.StatusCode {
		case 404:
			return fmt.Errorf("%w: %w", host.ErrImageNotFound, err)
		case 401, 403:
			return fmt.Errorf("%w: %w", host.ErrImageUnauthorized, err)
		}
	}
	return err
}

type progressWriter host.ProgressFunc

func (p progressWriter) Write(b []byte) (int, error) {
	if p != nil {
		p(int64(len(b)))
	}
	return len(b), nil
}

// OCIImages is one simulated node's image store: an OCI layout (index.json
// naming each image, blobs/sha256 hard-linked from the shared BlobCache).
// What a pull finished survives a crash: an interrupted pull, pulled again,
// fetches only the blobs the node does not have yet.
type OCIImages struct {
	cache *BlobCache
	dir   string
	arch  string

	mu       sync.Mutex // guards index.json and inflight
	inflight map[string]chan struct{}
}

var (
	_ host.ImageStore     = (*OCIImages)(nil)
	_ host.ProgressPuller = (*OCIImages)(nil)
)

// NewOCIImages opens (or creates) the node layout at dir.
func NewOCIImages(cache *BlobCache, dir string) (*OCIImages, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	return &OCIImages{cache: cache, dir: dir, arch: runtime.GOARCH, inflight: map[string]chan struct{}{}}, nil
}

const refAnnotation = "org.opencontainers.image.ref.name"

func (s *OCIImages) index() (v1.IndexManifest, error) {
	var idx v1.IndexManifest
	b, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, nil
	}
	if err != nil {
		return idx, fmt.Errorf("image store index: %w", err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, fmt.Errorf("image store index: %w", err)
	}
	return idx, nil
}

func (s *OCIImages) writeIndex(idx v1.IndexManifest) error {
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, "index.json"), b)
}

// Inventory lists the images whose every blob is on the node.
func (s *OCIImages) Inventory(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.index()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range idx.Manifests {
		out = append(out, m.Annotations[refAnnotation])
	}
	slices.Sort(out)
	return out, nil
}

// Pull fetches image unless present.
func (s *OCIImages) Pull(ctx context.Context, image string) (int64, error) {
	return s.PullWithProgress(ctx, image, nil)
}

// PullWithProgress fetches image's manifest, config and layers that the
// node lacks (each blob once, even when images pulled at the same time
// share it) and records the image; it returns the bytes the node added.
func (s *OCIImages) PullWithProgress(ctx context.Context, image string, progress host.ProgressFunc) (int64, error) {
	ref, err := name.NewDigest(image)
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", image, err)
	}
	if have, err := s.has(image); err != nil || have {
		return 0, err
	}
	d, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", image, err)
	}
	raw, mt, err := s.cache.readManifest(ctx, ref.Context(), d)
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", image, err)
	}
	blobs := []v1.Hash{d}
	if mt.IsIndex() {
		child, err := s.platformManifest(raw)
		if err != nil {
			return 0, fmt.Errorf("pull %s: %w", image, err)
		}
		if raw, _, err = s.cache.readManifest(ctx, ref.Context(), child); err != nil {
			return 0, fmt.Errorf("pull %s: %w", image, err)
		}
		blobs = append(blobs, child)
	}
	mf, err := v1.ParseManifest(strings.NewReader(string(raw)))
	if err != nil {
		return 0, fmt.Errorf("pull %s: manifest: %w", image, err)
	}
	var added int64
	for _, desc := range append([]v1.Descriptor{mf.Config}, mf.Layers...) {
		n, err := s.blob(ctx, ref.Context(), desc, progress)
		if err != nil {
			return added, fmt.Errorf("pull %s: %w", image, err)
		}
		added += n
	}
	for _, h := range blobs { // manifests last: the image counts once all is there
		if err := s.link(h); err != nil {
			return added, fmt.Errorf("pull %s: %w", image, err)
		}
	}
	return added, s.record(image, d, mt, int64(len(raw)))
}

func (s *OCIImages) platformManifest(raw []byte) (v1.Hash, error) {
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(raw)))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("index: %w", err)
	}
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.OS == "linux" && m.Platform.Architecture == s.arch {
			return m.Digest, nil
		}
	}
	return v1.Hash{}, fmt.Errorf("no linux/%s manifest in the index", s.arch)
}

func (s *OCIImages) has(image string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.index()
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(idx.Manifests, func(m v1.Descriptor) bool { return m.Annotations[refAnnotation] == image }), nil
}

// blob puts one blob in the node layout; it returns its size if the node
// did not have it, 0 if it did or another pull of this node brought it.
func (s *OCIImages) blob(ctx context.Context, repo name.Repository, desc v1.Descriptor, progress host.ProgressFunc) (int64, error) {
	for {
		if _, err := os.Stat(blobPath(s.dir, desc.Digest)); err == nil {
			return 0, nil
		}
		s.mu.Lock()
		wait, busy := s.inflight[desc.Digest.String()]
		if !busy {
			s.inflight[desc.Digest.String()] = make(chan struct{})
		}
		s.mu.Unlock()
		if busy {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-wait:
				continue
			}
		}
		err := s.cache.ensure(ctx, repo, desc.Digest, progress)
		if err == nil {
			err = s.link(desc.Digest)
		}
		s.mu.Lock()
		close(s.inflight[desc.Digest.String()])
		delete(s.inflight, desc.Digest.String())
		s.mu.Unlock()
		if err != nil {
			return 0, err
		}
		return desc.Size, nil
	}
}

// link hard-links a cached blob into the node layout (copying across
// file systems).
func (s *OCIImages) link(d v1.Hash) error {
	dst := blobPath(s.dir, d)
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	src := blobPath(s.cache.dir, d)
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, os.ErrExist) {
		return nil
	}
	b, rerr := os.ReadFile(src)
	if rerr != nil {
		return fmt.Errorf("link blob %s: %w", d, err)
	}
	return writeAtomic(dst, b)
}

func (s *OCIImages) record(image string, d v1.Hash, mt types.MediaType, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.index()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(idx.Manifests, func(m v1.Descriptor) bool { return m.Annotations[refAnnotation] == image }) {
		return nil
	}
	idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: mt, Digest: d, Size: size,
		Annotations: map[string]string{refAnnotation: image}})
	return s.writeIndex(idx)
}

// Remove forgets image and deletes the node's blobs no other image uses
// (the shared cache keeps them).
func (s *OCIImages) Remove(_ context.Context, image string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, err := s.index()
	if err != nil {
		return err
	}
	n := len(idx.Manifests)
	idx.Manifests = slices.DeleteFunc(idx.Manifests, func(m v1.Descriptor) bool { return m.Annotations[refAnnotation] == image })
	if len(idx.Manifests) == n {
		return nil
	}
	if err := s.writeIndex(idx); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, m := range idx.Manifests {
		keep[m.Digest.Hex] = true
		for _, h := range s.referenced(m.Digest) {
			keep[h.Hex] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256"))
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			if err := os.Remove(filepath.Join(s.dir, "blobs", "sha256", e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove blob: %w", err)
			}
		}
	}
	return nil
}

// referenced lists the blobs a manifest (or an index's platform manifest)
// points at.
func (s *OCIImages) referenced(d v1.Hash) []v1.Hash {
	b, err := os.ReadFile(blobPath(s.dir, d))
	if err != nil {
		return nil
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &probe)
	if probe.MediaType.IsIndex() {
		child, err := s.platformManifest(b)
		if err != nil {
			return nil
		}
		return append([]v1.Hash{child}, s.referenced(child)...)
	}
	mf, err := v1.ParseManifest(strings.NewReader(string(b)))
	if err != nil {
		return nil
	}
	out := []v1.Hash{mf.Config.Digest}
	for _, l := range mf.Layers {
		out = append(out, l.Digest)
	}
	return out
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
