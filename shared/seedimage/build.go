package seedimage

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Opener opens a layer's tar stream (uncompressed, or already gzipped). It
// is called several times during Build and each push or layout write.
type Opener func() (io.ReadCloser, error)

// FileOpener opens the tar file at path.
func FileOpener(path string) Opener {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

// BytesOpener serves b; for small content and tests.
func BytesOpener(b []byte) Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// Content is what goes into a seed's layers.
type Content struct {
	Ostree Opener // tar of an archive-mode ostree repo holding the seed commit
	Var    Opener // tar of the seed's /var, without logs, pods, container storage, temp files
	Etc    Opener // tar of the seed's changed /etc files
	// EtcDeletions are the absolute /etc paths the seed deleted.
	EtcDeletions []string
	// Extra holds further small files for the metadata layer, by plain name.
	Extra map[string][]byte
}

// Build assembles a seed image. The same inputs give the same digest: layers
// are gzipped with no header timestamp, the metadata tar has zero times,
// the image list is sorted and the config's times come from info.BuildTime.
// So a seed that differs from its predecessor only in /etc shares the
// ostree and /var layers, and a push uploads only what changed.
//
// Uncompressed input is read once for its diff ID and compressed once for
// its digest here, and compressed again by each push or layout write.
func Build(info SeedInfo, images []string, c Content) (v1.Image, error) {
	img, err := build(info, images, c)
	if err != nil {
		return nil, fmt.Errorf("build seed %s: %w", info.Version, err)
	}
	return img, nil
}

func build(info SeedInfo, images []string, c Content) (v1.Image, error) {
	if info.FormatVersion != "" && info.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w %q: this package writes %q", ErrFormatVersion, info.FormatVersion, FormatVersion)
	}
	info.FormatVersion = "" // the label carries it
	if err := info.Validate(); err != nil {
		return nil, err
	}
	images, err := normalizeImages(images)
	if err != nil {
		return nil, err
	}
	meta, err := Metadata{EtcDeletions: c.EtcDeletions, Extra: c.Extra}.tar()
	if err != nil {
		return nil, err
	}
	openers := map[Role]Opener{RoleOstree: c.Ostree, RoleVar: c.Var, RoleEtc: c.Etc, RoleMetadata: BytesOpener(meta)}

	infoJSON, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	imagesJSON, err := json.Marshal(images)
	if err != nil {
		return nil, fmt.Errorf("encode images: %w", err)
	}
	created := v1.Time{Time: info.BuildTime.UTC()}
	cf := &v1.ConfigFile{
		Architecture: info.Architecture,
		OS:           "linux",
		Created:      created,
		Config: v1.Config{Labels: map[string]string{
			LabelFormatVersion: FormatVersion,
			LabelInfo:          string(infoJSON),
			LabelImages:        string(imagesJSON),
		}},
		RootFS: v1.RootFS{Type: "layers"},
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}

	var adds []mutate.Addendum
	for _, role := range Roles() {
		op := openers[role]
		if op == nil {
			return nil, fmt.Errorf("%w %s: content has none", ErrMissingLayer, role)
		}
		// DefaultCompression, not ggcr's BestSpeed: a seed is built once and
		// pulled by a fleet.
		l, err := tarball.LayerFromOpener(tarball.Opener(op),
			tarball.WithMediaType(role.MediaType()),
			tarball.WithCompressionLevel(gzip.DefaultCompression))
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", role, err)
		}
		adds = append(adds, mutate.Addendum{
			Layer:       l,
			MediaType:   role.MediaType(),
			Annotations: map[string]string{AnnotationRole: string(role)},
			History:     v1.History{Created: created, CreatedBy: "ibu seed " + string(role) + " layer"},
		})
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	// mutate is lazy; compute the manifest now so errors surface here.
	if _, err := img.Digest(); err != nil {
		return nil, err
	}
	return img, nil
}
