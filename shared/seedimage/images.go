package seedimage

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ValidateImageRef checks that ref is a fully qualified image pinned by
// digest and nothing else: "registry/repository@sha256:<64 hex>". Tags are
// refused because a precache list must name exactly what the release needs.
func ValidateImageRef(ref string) error {
	repo, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return fmt.Errorf("%w: %q has no @sha256: digest", ErrBadImageRef, ref)
	}
	hex, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !isHex64(hex) {
		return fmt.Errorf("%w: %q: digest is not sha256:<64 lowercase hex>", ErrBadImageRef, ref)
	}
	// StrictValidation refuses a defaulted registry; the repository grammar
	// refuses a tag before the digest.
	if _, err := name.NewRepository(repo, name.StrictValidation); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrBadImageRef, ref, err)
	}
	return nil
}

// normalizeImages validates every reference and returns them sorted and
// without duplicates, so the order a builder lists them in does not change
// the seed's digest.
func normalizeImages(images []string) ([]string, error) {
	out := slices.Clone(images)
	for _, ref := range out {
		if err := ValidateImageRef(ref); err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
