package seedimage

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel errors, one per way a seed or a registry can fail us. Every error
// this package returns for such a case wraps one of them (errors.Is), with
// context saying which seed, layer or image.
var (
	ErrFormatVersion  = errors.New("unsupported seed format version")
	ErrMissingLabel   = errors.New("missing seed label")
	ErrBadInfo        = errors.New("malformed seed info")
	ErrBadImageRef    = errors.New("malformed image reference")
	ErrMissingLayer   = errors.New("missing seed layer")
	ErrBadLayer       = errors.New("unexpected seed layer")
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrBadMetadata    = errors.New("malformed seed metadata")
	ErrNotFound       = errors.New("seed not found")
	ErrNotImage       = errors.New("not an image manifest")
	ErrUnauthorized   = errors.New("registry refused credentials")
	ErrIncompatible   = errors.New("seed incompatible with cluster")
)

// registryError classifies a registry failure: a 401 or 403 wraps
// ErrUnauthorized, a 404 ErrNotFound; both keep the registry's own message.
func registryError(err error) error {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return err
	}
	switch terr.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %w", ErrUnauthorized, err)
	case http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// isAuthFailure: a token exchange refused with 401/403 comes back from
// go-containerregistry as a plain error whose text carries the status.
func isAuthFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "UNAUTHORIZED") || strings.Contains(s, "401 Unauthorized") || strings.Contains(s, "403 Forbidden") || strings.Contains(s, "DENIED")
}
