package seedimage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
)

// annotationRefName is the OCI layout's tag annotation.
const annotationRefName = "org.opencontainers.image.ref.name"

// WriteLayout writes img into the OCI image layout at dir, creating it if
// needed, and tags it with each tag (moving a tag from any image that had
// it). A blob already in the layout is not opened at all, so writing a seed
// pulled from a registry downloads only the layers the layout lacks. New
// blobs are checked against their digest as they are written and renamed
// into place only if they match; blobs already there are trusted (Verify
// rechecks them).
func WriteLayout(dir string, img v1.Image, tags ...string) error {
	if err := writeLayout(dir, img, tags); err != nil {
		return fmt.Errorf("write seed layout %s: %w", dir, err)
	}
	return nil
}

func writeLayout(dir string, img v1.Image, tags []string) error {
	p, err := openOrInitLayout(dir)
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return registryError(err)
	}
	for _, d := range m.Layers {
		open := func() (io.ReadCloser, error) {
			l, err := img.LayerByDigest(d.Digest)
			if err != nil {
				return nil, err
			}
			return l.Compressed()
		}
		if err := writeBlob(p, d, open); err != nil {
			return fmt.Errorf("layer %s: %w", d.Digest, registryError(err))
		}
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return registryError(err)
	}
	if err := writeBlob(p, m.Config, BytesOpener(rawConfig)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return registryError(err)
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return err
	}
	if err := writeBlob(p, *desc, BytesOpener(rawManifest)); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return updateIndex(p, *desc, tags)
}

// writeBlob writes the blob d unless the layout has a file of its size.
func writeBlob(p layout.Path, d v1.Descriptor, open Opener) error {
	if d.Digest.Algorithm != "sha256" || !isHex64(d.Digest.Hex) {
		return fmt.Errorf("%w: unsupported digest %s", ErrBadLayer, d.Digest)
	}
	dir := filepath.Join(string(p), "blobs", d.Digest.Algorithm)
	final := filepath.Join(dir, d.Digest.Hex)
	if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() && fi.Size() == d.Size {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, d.Digest.Hex+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex || n != d.Size {
		return fmt.Errorf("%w: got sha256:%s (%d bytes), want %s (%d bytes)", ErrDigestMismatch, got, n, d.Digest, d.Size)
	}
	return os.Rename(tmp.Name(), final)
}

// updateIndex lists desc in index.json under each tag (removing the tag from
// other entries), or once untagged if it is not listed yet. The index is
// replaced atomically.
func updateIndex(p layout.Path, desc v1.Descriptor, tags []string) error {
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	im = im.DeepCopy()
	if len(tags) == 0 {
		for _, d := range im.Manifests {
			if d.Digest == desc.Digest {
				return nil
			}
		}
		im.Manifests = append(im.Manifests, desc)
	}
	for _, tag := range tags {
		im.Manifests = slices.DeleteFunc(im.Manifests, func(d v1.Descriptor) bool { return d.Annotations[annotationRefName] == tag })
		d := desc
		d.Annotations = map[string]string{annotationRefName: tag}
		im.Manifests = append(im.Manifests, d)
	}
	b, err := json.MarshalIndent(im, "", "   ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(string(p), "index.json.partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(string(p), "index.json"))
}

// ReadLayout opens the seed that ref names in the layout at dir: a digest
// ("sha256:...") or a tag. Like New, it reads only the manifest and config.
func ReadLayout(dir, ref string) (*Seed, error) {
	s, err := readLayout(dir, ref)
	if err != nil {
		return nil, fmt.Errorf("read seed %s from layout %s: %w", ref, dir, err)
	}
	return s, nil
}

func readLayout(dir, ref string) (*Seed, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	d, err := findInLayout(p, ref)
	if err != nil {
		return nil, err
	}
	img, err := p.Image(d)
	if err != nil {
		return nil, err
	}
	return New(img)
}

func openOrInitLayout(dir string) (layout.Path, error) {
	_, err := os.Stat(filepath.Join(dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return layout.Write(dir, empty.Index)
	}
	if err != nil {
		return "", err
	}
	return layout.FromPath(dir)
}

// findInLayout resolves a digest or tag to the digest of an image manifest
// listed in the layout's index.
func findInLayout(p layout.Path, ref string) (v1.Hash, error) {
	idx, err := p.ImageIndex()
	if err != nil {
		return v1.Hash{}, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	h, digestErr := v1.NewHash(ref)
	for _, d := range m.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		if (digestErr == nil && d.Digest == h) || (digestErr != nil && d.Annotations[annotationRefName] == ref) {
			return d.Digest, nil
		}
	}
	return v1.Hash{}, fmt.Errorf("%w: no image %s in the layout", ErrNotFound, ref)
}
