package seedsim

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageSet shapes a synthetic set of runnable-format container images with layers shared
// the way a release's images share them: one base layer in every image, a
// group layer shared by each group of GroupSize images, and one layer of
// its own per image. Layer contents are pseudo-random (incompressible) and
// deterministic in Seed.
type ImageSet struct {
	Count      int
	BaseSize   int64 // bytes of the layer every image has
	GroupSize  int   // images per shared group layer (0: no group layers)
	GroupBytes int64
	OwnBytes   int64
	Seed       uint64
}

// ImageSetResult lists the pushed images and what pulling them costs.
type ImageSetResult struct {
	Images      []string // repo@sha256:..., in creation order
	NaiveBytes  int64    // sum of every image's layers: pulling each image in full
	UniqueBytes int64    // the distinct layers: what a layer-sharing node fetches
}

// Push builds the set and pushes it to registry (host[:port]) under
// repo-prefix/img-<i>.
func (s ImageSet) Push(ctx context.Context, registry, repoPrefix string, rt http.RoundTripper) (ImageSetResult, error) {
	var res ImageSetResult
	// A layer is an uncompressed tar holding one file of n pseudo-random
	// bytes, so a container runtime can unpack it.
	layer := func(tag string, n int64) (v1.Layer, int64, error) {
		r := rand.New(rand.NewPCG(s.Seed, uint64(len(tag))*7919+uint64(n)))
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		copy(b, tag) // distinct layers even when sizes match
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: "data/" + tag, Mode: 0o644, Size: n, Typeflag: tar.TypeReg}); err != nil {
			return nil, 0, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, 0, err
		}
		if err := tw.Close(); err != nil {
			return nil, 0, err
		}
		return static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer), int64(buf.Len()), nil
	}
	base, baseSize, err := layer("base", s.BaseSize)
	if err != nil {
		return res, err
	}
	res.UniqueBytes += baseSize
	groups := map[int]v1.Layer{}
	groupSizes := map[int]int64{}
	opts := []remote.Option{remote.WithContext(ctx)}
	if rt != nil {
		opts = append(opts, remote.WithTransport(rt))
	}
	for i := range s.Count {
		ls := []v1.Layer{base}
		size := baseSize
		if s.GroupSize > 0 && s.GroupBytes > 0 {
			g := i / s.GroupSize
			if groups[g] == nil {
				if groups[g], groupSizes[g], err = layer(fmt.Sprintf("group-%d", g), s.GroupBytes); err != nil {
					return res, err
				}
				res.UniqueBytes += groupSizes[g]
			}
			ls = append(ls, groups[g])
			size += groupSizes[g]
		}
		own, ownSize, err := layer(fmt.Sprintf("own-%d", i), s.OwnBytes)
		if err != nil {
			return res, err
		}
		ls = append(ls, own)
		size += ownSize
		res.UniqueBytes += ownSize
		res.NaiveBytes += size
		img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), ls...)
		if err != nil {
			return res, err
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		ref, err := name.ParseReference(fmt.Sprintf("%s/%s/img-%d:latest", registry, repoPrefix, i))
		if err != nil {
			return res, err
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			return res, fmt.Errorf("push %s: %w", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			return res, err
		}
		res.Images = append(res.Images, ref.Context().Name()+"@"+d.String())
	}
	return res, nil
}
