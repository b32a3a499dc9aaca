package seedimage

import (
	"errors"
	"fmt"
	"time"
)

// IPFamily is the IP stack of a cluster's node network.
type IPFamily string

// The IP families ibu knows.
const (
	IPv4      IPFamily = "IPv4"
	IPv6      IPFamily = "IPv6"
	DualStack IPFamily = "DualStack"
)

// Container-storage layouts: where /var/lib/containers lives.
const (
	StorageSeparatePartition = "separate-partition" // its own partition, shared by both stateroots
	StorageVarLibContainers  = "var-lib-containers" // a directory of the stateroot's /var
)

// Operator is an installed operator (an OLM ClusterServiceVersion's package).
type Operator struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Fingerprint is what must be equal on the seed and on the cluster for the
// seed's stateroot to boot there. SeedInfo and ClusterInfo both carry it.
type Fingerprint struct {
	Architecture     string     `json:"architecture"`     // GOARCH-style: amd64, arm64
	Platform         string     `json:"platform"`         // infrastructure platform: None, BareMetal, ...
	NetworkType      string     `json:"networkType"`      // OVNKubernetes, ...
	IPFamily         IPFamily   `json:"ipFamily"`         // IPv4, IPv6, DualStack
	Proxy            bool       `json:"proxy"`            // a cluster-wide proxy is configured
	FIPS             bool       `json:"fips"`             // FIPS mode is on
	TrustBundleHash  string     `json:"trustBundleHash"`  // hash of the additional trust bundle, "" if none
	ContainerStorage string     `json:"containerStorage"` // StorageSeparatePartition or StorageVarLibContainers
	Operators        []Operator `json:"operators,omitempty"`
}

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
