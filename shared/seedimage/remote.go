package seedimage

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads a seed to ref and returns it pinned by digest
// ("registry/repo@sha256:..."). Blobs the repository already has are not
// uploaded again, so a seed that shares layers with an earlier one costs only
// its changed layers. img must describe itself as a seed (see New).
func Push(ctx context.Context, ref string, img v1.Image, opts ...Option) (string, error) {
	pinned, err := push(ctx, ref, img, newOptions(opts))
	if err != nil {
		return "", fmt.Errorf("push seed %s: %w", ref, err)
	}
	return pinned, nil
}

func push(ctx context.Context, ref string, img v1.Image, o *options) (string, error) {
	if _, err := New(img); err != nil {
		return "", err
	}
	r, err := o.parse(ref)
	if err != nil {
		return "", err
	}
	ropts, err := o.remote(ctx)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, ropts...); err != nil {
		return "", registryError(err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return r.Context().Digest(d.String()).String(), nil
}

// Pull opens the seed at ref. It fetches the manifest and the config; each
// layer is fetched, and checked against its digest, only as it is read, so
// write the seed into a layout (WriteLayout) to keep it.
func Pull(ctx context.Context, ref string, opts ...Option) (*Seed, error) {
	s, _, err := open(ctx, ref, newOptions(opts))
	if err != nil {
		return nil, fmt.Errorf("pull seed %s: %w", ref, err)
	}
	return s, nil
}

// Summary is what a seed says about itself in its manifest and config.
type Summary struct {
	// Ref is the seed pinned by digest: pull this, not a tag, so that what
	// is pulled is what was checked.
	Ref    string   `json:"ref"`
	Info   SeedInfo `json:"info"`
	Images []string `json:"images"`
}

// Inspect reads a seed's manifest and config, and no layer: enough for
// Compatible before anything is pulled.
func Inspect(ctx context.Context, ref string, opts ...Option) (Summary, error) {
	s, pinned, err := open(ctx, ref, newOptions(opts))
	if err != nil {
		return Summary{}, fmt.Errorf("inspect seed %s: %w", ref, err)
	}
	return Summary{Ref: pinned, Info: s.Info(), Images: s.PrecacheImages()}, nil
}

// open fetches the manifest (refusing an index or an artifact) and the
// config, and returns the seed and its digest-pinned reference.
func open(ctx context.Context, ref string, o *options) (*Seed, string, error) {
	r, err := o.parse(ref)
	if err != nil {
		return nil, "", err
	}
	ropts, err := o.remote(ctx)
	if err != nil {
		return nil, "", err
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, "", registryError(err)
	}
	if !desc.MediaType.IsImage() {
		return nil, "", fmt.Errorf("%w: %s is a %s, not an image manifest", ErrNotImage, ref, desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, "", registryError(err)
	}
	s, err := New(img)
	if err != nil {
		return nil, "", registryError(err)
	}
	return s, r.Context().Digest(desc.Digest.String()).String(), nil
}
