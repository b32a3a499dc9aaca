package seedimage

import (
	"errors"
	"fmt"
	"time"

	"ibu.dev/shared/fingerprint"
)

// The fingerprint types live in package fingerprint, shared with the event
// contract; these aliases keep seedimage's API self-contained.
type (
	Fingerprint = fingerprint.Fingerprint
	Operator    = fingerprint.Operator
	IPFamily    = fingerprint.IPFamily
)

// Re-exported fingerprint constants.
const (
	IPv4                     = fingerprint.IPv4
	IPv6                     = fingerprint.IPv6
	DualStack                = fingerprint.DualStack
	StorageSeparatePartition = fingerprint.StorageSeparatePartition
	StorageVarLibContainers  = fingerprint.StorageVarLibContainers
)

// SeedInfo describes a seed: the release it carries and the cluster it was
// taken from. It travels as JSON in the LabelInfo label.
type SeedInfo struct {
	// FormatVersion comes from LabelFormatVersion when a seed is read; it is
	// not part of the LabelInfo JSON that Build writes.
	FormatVersion string `json:"formatVersion,omitempty"`
	Version       string `json:"version"`      // OpenShift version, e.g. 4.16.3
	ReleaseImage  string `json:"releaseImage"` // the release payload, name@sha256:...
	Fingerprint
	KernelArgs   []string  `json:"kernelArgs,omitempty"`
	OstreeCommit string    `json:"ostreeCommit"` // checksum of the commit in the ostree layer
	Stateroot    string    `json:"stateroot"`    // name of the stateroot to deploy it into
	BuildTime    time.Time `json:"buildTime"`
}

// ClusterInfo describes a target cluster, for Compatible.
type ClusterInfo struct {
	Version string `json:"version"` // current OpenShift version
	Fingerprint
}

// Validate reports every field that a v1 seed cannot do without, or that is
// malformed; each problem wraps ErrBadInfo (or ErrBadImageRef for the
// release image).
func (i SeedInfo) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrBadInfo}, a...)...))
	}
	if _, err := ParseVersion(i.Version); err != nil {
		bad("version: %v", err)
	}
	if err := ValidateImageRef(i.ReleaseImage); err != nil {
		errs = append(errs, fmt.Errorf("release image: %w", err))
	}
	if i.Architecture == "" {
		bad("architecture is empty")
	}
	switch i.IPFamily {
	case IPv4, IPv6, DualStack:
	default:
		bad("ipFamily %q is not IPv4, IPv6 or DualStack", i.IPFamily)
	}
	if !isHex64(i.OstreeCommit) {
		bad("ostreeCommit %q is not a sha256 checksum", i.OstreeCommit)
	}
	if !validStateroot(i.Stateroot) {
		bad("stateroot %q is not a valid name", i.Stateroot)
	}
	for _, op := range i.Operators {
		if op.Name == "" {
			bad("an operator has no name")
		}
	}
	return errors.Join(errs...)
}

// validStateroot accepts a name that is safe as a path element and as an
// ostree osname: letters, digits, '.', '_', '-', not starting with '.' or '-'.
func validStateroot(s string) bool {
	if s == "" || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}
