package seedimage

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RoleLayer is a content layer already compressed, with its role.
type RoleLayer struct {
	Role  Role
	Layer v1.Layer
}

// Assemble makes a seed image from content layers that are compressed
// already (a seed-builder receives them so from the capture, so they are
// compressed once, on the seed host) and builds the metadata layer from
// md. Each layer's media type must be its role's, gzip or zstd. Like
// Build, the same inputs give the same digest.
//
// A content role may be given up to MaxChain layers, in the order they
// are applied (a full layer, then deltas): the seed is then written as
// FormatVersionChained, with each of that role's layers annotated with its
// position. With one layer per role it is a format 1 seed, as before.
func Assemble(info SeedInfo, images []string, content []RoleLayer, md Metadata) (v1.Image, error) {
	img, err := assemble(info, images, content, md)
	if err != nil {
		return nil, fmt.Errorf("assemble seed %s: %w", info.Version, err)
	}
	return img, nil
}

func assemble(info SeedInfo, images []string, content []RoleLayer, md Metadata) (v1.Image, error) {
	if err := md.validate(); err != nil {
		return nil, err
	}
	meta, err := md.tar()
	if err != nil {
		return nil, err
	}
	ml, err := tarball.LayerFromOpener(tarball.Opener(BytesOpener(meta)),
		tarball.WithMediaType(RoleMetadata.MediaType()), tarball.WithCompressionLevel(gzip.DefaultCompression))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", RoleMetadata, err)
	}
	byRole := map[Role][]v1.Layer{RoleMetadata: {ml}}
	chained := false
	for _, c := range content {
		if c.Role == RoleMetadata || c.Role.MediaType() == "" {
			return nil, fmt.Errorf("%w: role %q is not a content role", ErrBadLayer, c.Role)
		}
		if n := len(byRole[c.Role]); n >= MaxChain {
			return nil, fmt.Errorf("%w: more than %d %s layers", ErrBadLayer, MaxChain, c.Role)
		} else if n > 0 {
			chained = true
		}
		mt, err := c.Layer.MediaType()
		if err != nil {
			return nil, err
		}
		if !c.Role.Accepts(mt) {
			return nil, fmt.Errorf("%w: %s layer has media type %s, want %s", ErrBadLayer, c.Role, mt, c.Role.MediaType())
		}
		byRole[c.Role] = append(byRole[c.Role], c.Layer)
	}
	version := FormatVersion
	if chained {
		version = FormatVersionChained
	}
	base, created, err := seedBase(info, images, version)
	if err != nil {
		return nil, err
	}
	var adds []mutate.Addendum
	for _, role := range Roles() {
		ls := byRole[role]
		if len(ls) == 0 {
			return nil, fmt.Errorf("%w %s", ErrMissingLayer, role)
		}
		for i, l := range ls {
			mt, err := l.MediaType()
			if err != nil {
				return nil, err
			}
			ann := map[string]string{AnnotationRole: string(role)}
			by := "ibu seed " + string(role) + " layer"
			if len(ls) > 1 {
				ann[AnnotationLayerIndex] = strconv.Itoa(i)
				if i > 0 {
					by = "ibu seed " + string(role) + " delta layer"
				}
			}
			adds = append(adds, mutate.Addendum{
				Layer: l, MediaType: mt, Annotations: ann,
				History: v1.History{Created: created, CreatedBy: by},
			})
		}
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	if _, err := img.Digest(); err != nil {
		return nil, err
	}
	return img, nil
}

// seedBase is the empty seed image with its config: labels and times.
func seedBase(info SeedInfo, images []string, version string) (v1.Image, v1.Time, error) {
	if info.FormatVersion != "" && !SupportedFormat(info.FormatVersion) {
		return nil, v1.Time{}, fmt.Errorf("%w %q: this package writes %q or %q", ErrFormatVersion, info.FormatVersion, FormatVersion, FormatVersionChained)
	}
	info.FormatVersion = ""
	if err := info.Validate(); err != nil {
		return nil, v1.Time{}, err
	}
	images, err := normalizeImages(images)
	if err != nil {
		return nil, v1.Time{}, err
	}
	infoJSON, err := json.Marshal(info)
	if err != nil {
		return nil, v1.Time{}, fmt.Errorf("encode info: %w", err)
	}
	imagesJSON, err := json.Marshal(images)
	if err != nil {
		return nil, v1.Time{}, fmt.Errorf("encode images: %w", err)
	}
	created := v1.Time{Time: info.BuildTime.UTC()}
	cf := &v1.ConfigFile{
		Architecture: info.Architecture, OS: "linux", Created: created,
		Config: v1.Config{Labels: map[string]string{
			LabelFormatVersion: version, LabelInfo: string(infoJSON), LabelImages: string(imagesJSON),
		}},
		RootFS: v1.RootFS{Type: "layers"},
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, cf)
	if err != nil {
		return nil, v1.Time{}, fmt.Errorf("config: %w", err)
	}
	return base, created, nil
}

// CheckPush checks, before anything is built, that the registry of ref
// answers and that the credentials may push to its repository: it asks for
// a push token and opens (and abandons) a blob upload. A refusal wraps
// ErrUnauthorized.
func CheckPush(ctx context.Context, ref string, opts ...Option) error {
	o := newOptions(opts)
	r, err := o.parse(ref)
	if err != nil {
		return err
	}
	var kc authn.Keychain
	switch {
	case o.auth != nil:
		kc = staticKeychain{o.auth}
	case o.authFile != "":
		if kc, err = loadAuthFile(o.authFile); err != nil {
			return err
		}
	case o.keychain != nil:
		kc = o.keychain
	default:
		kc = authn.DefaultKeychain
	}
	t := o.transport
	if t == nil {
		t = remote.DefaultTransport
	}
	if err := remote.CheckPushPermission(r, kc, t); err != nil {
		if e := registryError(err); !errors.Is(e, ErrUnauthorized) && isAuthFailure(err) {
			return fmt.Errorf("check push to %s: %w: %w", ref, ErrUnauthorized, err)
		} else {
			return fmt.Errorf("check push to %s: %w", ref, e)
		}
	}
	return ctx.Err()
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// RemoteOptions turns options into go-containerregistry remote options,
// for callers that compose remote calls themselves (push by digest, then
// tag).
func RemoteOptions(ctx context.Context, opts ...Option) ([]remote.Option, error) {
	return newOptions(opts).remote(ctx)
}

// BlobExists asks the registry whether repo (e.g. "host/seeds/sno") holds
// the blob digest, with a HEAD request: how a builder tells which layers
// an earlier seed already uploaded.
func BlobExists(ctx context.Context, repo string, digest v1.Hash, opts ...Option) (bool, error) {
	o := newOptions(opts)
	r, err := o.parse(repo + "@" + digest.String())
	if err != nil {
		return false, err
	}
	ropts, err := o.remote(ctx)
	if err != nil {
		return false, err
	}
	l, err := remote.Layer(r.(name.Digest), ropts...)
	if err != nil {
		return false, registryError(err)
	}
	ok, err := partial.Exists(l) // a HEAD on the blob
	if err != nil {
		return false, registryError(err)
	}
	return ok, nil
}
