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
	layers map[Role]v1.Descriptor // the first layer of each role
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
	s := &Seed{Image: img, layers: map[Role]v1.Descriptor{}}
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
	for _, d := range m.Layers {
		role := Role(d.Annotations[AnnotationRole])
		if _, seen := s.layers[role]; !seen && role.MediaType() != "" {
			s.layers[role] = d
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

// Layer returns the layer holding role, found by its annotation. For a seed
// read from a registry, nothing is downloaded until the layer is read.
func (s *Seed) Layer(role Role) (v1.Layer, error) {
	d, ok := s.layers[role]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrMissingLayer, role)
	}
	l, err := s.LayerByDigest(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", role, err)
	}
	return l, nil
}
