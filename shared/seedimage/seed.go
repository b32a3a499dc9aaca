package seedimage

import (
	"encoding/json"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Seed is a seed image: the OCI image itself (so it can be pushed, written
// to a layout or read like any v1.Image) plus what its labels say. Reading a
// Seed's info never touches its layers.
type Seed struct {
	v1.Image

	info   SeedInfo
	images []string
	layers map[Role][]v1.Descriptor // each role's layers, in manifest order
	index  map[Role][]int           // their positions in the manifest
}

// New reads img's manifest and config, never its layers. It fails only when
// the seed cannot be described at all: a required label is missing or its
// JSON is malformed. A wrong format version, malformed fields or a missing
// layer are left for Compatible and Verify, so that one report can say
// everything that is wrong.
func New(img v1.Image) (*Seed, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	labels := cf.Config.Labels
	label := func(key string) (string, error) {
		v, ok := labels[key]
		if !ok {
			return "", fmt.Errorf("%w %s", ErrMissingLabel, key)
		}
		return v, nil
	}
	s := &Seed{Image: img, layers: map[Role][]v1.Descriptor{}, index: map[Role][]int{}}
	version, err := label(LabelFormatVersion)
	if err != nil {
		return nil, err
	}
	info, err := label(LabelInfo)
	if err != nil {
		return nil, err
	}
	images, err := label(LabelImages)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(info), &s.info); err != nil {
		return nil, fmt.Errorf("%w: label %s: %v", ErrBadInfo, LabelInfo, err)
	}
	s.info.FormatVersion = version
	if err := json.Unmarshal([]byte(images), &s.images); err != nil {
		return nil, fmt.Errorf("%w: label %s is not a JSON array of strings: %v", ErrBadImageRef, LabelImages, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	for i, d := range m.Layers {
		role := Role(d.Annotations[AnnotationRole])
		if role.MediaType() != "" {
			s.layers[role] = append(s.layers[role], d)
			s.index[role] = append(s.index[role], i)
		}
	}
	return s, nil
}

// Info returns the seed's description, with FormatVersion from its label.
func (s *Seed) Info() SeedInfo {
	info := s.info
	info.Operators = slices.Clone(info.Operators)
	info.KernelArgs = slices.Clone(info.KernelArgs)
	return info
}

// PrecacheImages returns the container images the seed's release needs on
// the target before the upgrade, each "name@sha256:<hex>".
func (s *Seed) PrecacheImages() []string { return slices.Clone(s.images) }

// Layer returns the (first) layer holding role, found by its annotation.
// For a seed read from a registry, nothing is downloaded until the layer
// is read. A role of a chained seed may have more layers: see Chain.
func (s *Seed) Layer(role Role) (v1.Layer, error) {
	ds := s.layers[role]
	if len(ds) == 0 {
		return nil, fmt.Errorf("%w %s", ErrMissingLayer, role)
	}
	l, err := s.LayerByDigest(ds[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", role, err)
	}
	return l, nil
}

// ChainLayer is one layer of a role's chain, with its descriptor and the
// diff ID the seed's config gives it.
type ChainLayer struct {
	v1.Layer
	Descriptor v1.Descriptor
	DiffID     v1.Hash
}

// Chain returns every layer of role, in the order they are applied: one
// for a format 1 seed, a full layer then deltas for a chained one. The
// diff IDs come from the config (reading them from a layer could mean
// reading the whole layer).
func (s *Seed) Chain(role Role) ([]ChainLayer, error) {
	ds := s.layers[role]
	if len(ds) == 0 {
		return nil, fmt.Errorf("%w %s", ErrMissingLayer, role)
	}
	cf, err := s.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	out := make([]ChainLayer, 0, len(ds))
	for i, d := range ds {
		pos := s.index[role][i]
		if pos >= len(cf.RootFS.DiffIDs) {
			return nil, fmt.Errorf("%w: config has no diff ID for layer %d (%s)", ErrBadLayer, pos, role)
		}
		l, err := s.LayerByDigest(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %s %d: %w", role, i, err)
		}
		out = append(out, ChainLayer{Layer: l, Descriptor: d, DiffID: cf.RootFS.DiffIDs[pos]})
	}
	return out, nil
}
