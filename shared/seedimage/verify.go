package seedimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Verify checks that s is a well-formed v1 seed: format version, info
// fields, image list, one layer per role with its media type, and every
// blob's digest, size and diff ID against its content. It reads every
// layer, and returns every problem found, joined; each wraps a sentinel
// error. (A registry blob that does not match its digest fails the read
// itself, in go-containerregistry, before Verify can compare it.)
func Verify(ctx context.Context, s *Seed) error {
	errs := verify(ctx, s)
	if len(errs) == 0 {
		return nil
	}
	d, err := s.Digest()
	if err != nil {
		return fmt.Errorf("verify seed: %w", errors.Join(append(errs, err)...))
	}
	return fmt.Errorf("verify seed %s: %w", d, errors.Join(errs...))
}

func verify(ctx context.Context, s *Seed) []error {
	var errs []error
	if !SupportedFormat(s.info.FormatVersion) {
		errs = append(errs, fmt.Errorf("%w %q, want %q or %q", ErrFormatVersion, s.info.FormatVersion, FormatVersion, FormatVersionChained))
	}
	info := s.info
	info.FormatVersion = ""
	if err := info.Validate(); err != nil {
		errs = append(errs, err)
	}
	for _, ref := range s.images {
		if err := ValidateImageRef(ref); err != nil {
			errs = append(errs, fmt.Errorf("precache image: %w", err))
		}
	}
	m, err := s.Manifest()
	if err != nil {
		return append(errs, fmt.Errorf("read manifest: %w", err))
	}
	raw, err := s.RawConfigFile()
	if err != nil {
		return append(errs, fmt.Errorf("read config: %w", err))
	}
	if err := checkDigest("config", m.Config, raw); err != nil {
		errs = append(errs, err)
	}
	cf, err := s.ConfigFile()
	if err != nil {
		return append(errs, fmt.Errorf("read config: %w", err))
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		errs = append(errs, fmt.Errorf("%w: config lists %d diff IDs for %d layers", ErrBadLayer, len(cf.RootFS.DiffIDs), len(m.Layers)))
	}
	errs = append(errs, checkRoles(m.Layers, s.info.FormatVersion == FormatVersionChained)...)
	for i, d := range m.Layers {
		if err := ctx.Err(); err != nil {
			return append(errs, err)
		}
		var diffID *v1.Hash
		if i < len(cf.RootFS.DiffIDs) {
			diffID = &cf.RootFS.DiffIDs[i]
		}
		if err := checkLayer(ctx, s, d, diffID); err != nil {
			errs = append(errs, err)
		}
	}
	if _, ok := s.layers[RoleMetadata]; ok && len(errs) == 0 {
		if _, err := s.Metadata(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// checkRoles requires each role with its media type, and no other layers:
// exactly one layer per role, or, in a chained seed, up to MaxChain
// consecutive layers of a content role, each annotated with its position.
func checkRoles(layers []v1.Descriptor, chained bool) []error {
	var errs []error
	seen := map[Role]int{}
	var prev Role
	for i, d := range layers {
		role := Role(d.Annotations[AnnotationRole])
		want := role.MediaType()
		switch {
		case want == "":
			errs = append(errs, fmt.Errorf("%w: layer %d (%s) has role %q", ErrBadLayer, i, d.Digest, role))
			prev = ""
			continue
		case !role.Accepts(d.MediaType):
			errs = append(errs, fmt.Errorf("%w: layer %s has media type %s, want %s", ErrBadLayer, role, d.MediaType, want))
		}
		if seen[role] > 0 && prev != role {
			errs = append(errs, fmt.Errorf("%w: the %s layers are not consecutive", ErrBadLayer, role))
		}
		prev = role
		seen[role]++
		switch {
		case !chained || !role.Chainable():
			if seen[role] == 2 {
				errs = append(errs, fmt.Errorf("%w: more than one %s layer", ErrBadLayer, role))
			}
		case seen[role] == MaxChain+1:
			errs = append(errs, fmt.Errorf("%w: more than %d %s layers", ErrBadLayer, MaxChain, role))
		}
	}
	for _, role := range Roles() {
		if seen[role] == 0 {
			errs = append(errs, fmt.Errorf("%w %s", ErrMissingLayer, role))
		}
	}
	if chained {
		count := map[Role]int{}
		for _, d := range layers {
			role := Role(d.Annotations[AnnotationRole])
			if seen[role] < 2 || !role.Chainable() {
				continue
			}
			if got, want := d.Annotations[AnnotationLayerIndex], strconv.Itoa(count[role]); got != want {
				errs = append(errs, fmt.Errorf("%w: %s layer %s has index %q, want %q", ErrBadLayer, role, d.Digest, got, want))
			}
			count[role]++
		}
	}
	return errs
}

func checkDigest(what string, d v1.Descriptor, b []byte) error {
	sum := sha256.Sum256(b)
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if got != d.Digest || int64(len(b)) != d.Size {
		return fmt.Errorf("%w: %s is %s (%d bytes), manifest says %s (%d bytes)", ErrDigestMismatch, what, got, len(b), d.Digest, d.Size)
	}
	return nil
}

// checkLayer reads the layer's blob once, hashing it and, through gunzip,
// its uncompressed content.
func checkLayer(ctx context.Context, s *Seed, d v1.Descriptor, diffID *v1.Hash) error {
	what := fmt.Sprintf("layer %s (%s)", d.Annotations[AnnotationRole], d.Digest)
	if d.Digest.Algorithm != "sha256" {
		return fmt.Errorf("%w: %s: unsupported digest algorithm", ErrBadLayer, what)
	}
	l, err := s.LayerByDigest(d.Digest)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("%s: %w", what, registryError(err))
	}
	defer rc.Close()

	pr, pw := io.Pipe()
	type result struct {
		diffID v1.Hash
		err    error
	}
	done := make(chan result, 1)
	go func() {
		h, _, err := decompressHash(pr, compressionOf(d.MediaType))
		_, _ = io.Copy(io.Discard, pr) // keep the blob hash going after a gzip error
		done <- result{h, err}
	}()
	blob := sha256.New()
	n, err := io.Copy(io.MultiWriter(blob, pw), ctxReader{ctx, rc})
	pw.CloseWithError(err)
	res := <-done
	if err != nil {
		return fmt.Errorf("%s: read: %w", what, registryError(err))
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(blob.Sum(nil))}
	if got != d.Digest || n != d.Size {
		return fmt.Errorf("%w: %s: content is %s (%d bytes), manifest says %d bytes", ErrDigestMismatch, what, got, n, d.Size)
	}
	if res.err != nil {
		return fmt.Errorf("%w: %s is not %s: %v", ErrBadLayer, what, compressionOf(d.MediaType), res.err)
	}
	if diffID != nil && res.diffID != *diffID {
		return fmt.Errorf("%w: %s: uncompressed content is %s, config says %s", ErrDigestMismatch, what, res.diffID, *diffID)
	}
	return nil
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
