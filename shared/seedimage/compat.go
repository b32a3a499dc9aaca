package seedimage

import (
	"fmt"
	"strings"
)

// ReasonCode names one way a seed does not fit a cluster.
type ReasonCode string

// Reason codes returned by Compatible.
const (
	FormatVersionUnsupported ReasonCode = "FormatVersionUnsupported"
	ArchitectureMismatch     ReasonCode = "ArchitectureMismatch"
	VersionInvalid           ReasonCode = "VersionInvalid"
	VersionNotNewer          ReasonCode = "VersionNotNewer"
	PlatformMismatch         ReasonCode = "PlatformMismatch"
	NetworkTypeMismatch      ReasonCode = "NetworkTypeMismatch"
	IPFamilyMismatch         ReasonCode = "IPFamilyMismatch"
	ProxyMismatch            ReasonCode = "ProxyMismatch"
	FIPSMismatch             ReasonCode = "FIPSMismatch"
	TrustBundleMismatch      ReasonCode = "TrustBundleMismatch"
	ContainerStorageMismatch ReasonCode = "ContainerStorageMismatch"
	MissingOperators         ReasonCode = "MissingOperators"
)

// Reason is one incompatibility: a stable code for machines and a message
// for people.
type Reason struct {
	Code    ReasonCode `json:"code"`
	Message string     `json:"message"`
}

// IncompatibleError lists every reason a seed does not fit a cluster.
// errors.Is(err, ErrIncompatible) holds for it.
type IncompatibleError struct {
	Reasons []Reason
}

func (e *IncompatibleError) Error() string {
	msgs := make([]string, len(e.Reasons))
	for i, r := range e.Reasons {
		msgs[i] = string(r.Code) + ": " + r.Message
	}
	return ErrIncompatible.Error() + ": " + strings.Join(msgs, "; ")
}

// Is makes errors.Is(err, ErrIncompatible) true.
func (e *IncompatibleError) Is(target error) bool { return target == ErrIncompatible }

// Has reports whether code is among the reasons.
func (e *IncompatibleError) Has(code ReasonCode) bool {
	for _, r := range e.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

// Compatible checks, from the seed's labels alone, that the seed can upgrade
// the cluster. It returns nil, or an *IncompatibleError with every reason at
// once so that an operator fixes them all in one round.
func Compatible(seed SeedInfo, cluster ClusterInfo) error {
	var rs []Reason
	add := func(code ReasonCode, format string, a ...any) {
		rs = append(rs, Reason{Code: code, Message: fmt.Sprintf(format, a...)})
	}
	if !SupportedFormat(seed.FormatVersion) {
		add(FormatVersionUnsupported, "seed format version %q, this agent reads %q and %q", seed.FormatVersion, FormatVersion, FormatVersionChained)
	}
	s, c := seed.Fingerprint, cluster.Fingerprint
	if s.Architecture != c.Architecture {
		add(ArchitectureMismatch, "seed is %s, cluster is %s", s.Architecture, c.Architecture)
	}
	checkVersion(seed.Version, cluster.Version, add)
	if s.Platform != c.Platform {
		add(PlatformMismatch, "seed platform %q, cluster platform %q", s.Platform, c.Platform)
	}
	if s.NetworkType != c.NetworkType {
		add(NetworkTypeMismatch, "seed network type %q, cluster network type %q", s.NetworkType, c.NetworkType)
	}
	if s.IPFamily != c.IPFamily {
		add(IPFamilyMismatch, "seed IP family %s, cluster IP family %s", s.IPFamily, c.IPFamily)
	}
	if s.Proxy != c.Proxy {
		add(ProxyMismatch, "cluster-wide proxy on the seed: %t, on the cluster: %t", s.Proxy, c.Proxy)
	}
	if s.FIPS != c.FIPS {
		add(FIPSMismatch, "FIPS mode on the seed: %t, on the cluster: %t", s.FIPS, c.FIPS)
	}
	if s.TrustBundleHash != c.TrustBundleHash {
		add(TrustBundleMismatch, "seed trust bundle %q, cluster trust bundle %q", s.TrustBundleHash, c.TrustBundleHash)
	}
	if s.ContainerStorage != c.ContainerStorage {
		add(ContainerStorageMismatch, "seed container storage %q, cluster container storage %q", s.ContainerStorage, c.ContainerStorage)
	}
	if missing := missingOperators(s.Operators, c.Operators); len(missing) > 0 {
		add(MissingOperators, "installed on the cluster but not in the seed: %s", strings.Join(missing, ", "))
	}
	if len(rs) == 0 {
		return nil
	}
	return &IncompatibleError{Reasons: rs}
}

// checkVersion requires the seed to be strictly newer than the cluster.
func checkVersion(seed, cluster string, add func(ReasonCode, string, ...any)) {
	sv, serr := ParseVersion(seed)
	cv, cerr := ParseVersion(cluster)
	if serr != nil {
		add(VersionInvalid, "seed: %v", serr)
	}
	if cerr != nil {
		add(VersionInvalid, "cluster: %v", cerr)
	}
	if serr == nil && cerr == nil && sv.Compare(cv) <= 0 {
		add(VersionNotNewer, "seed version %s is not newer than cluster version %s", seed, cluster)
	}
}

// missingOperators lists, as "name (version)", the cluster's operators that
// the seed does not have under any version.
func missingOperators(seed, cluster []Operator) []string {
	have := make(map[string]bool, len(seed))
	for _, op := range seed {
		have[op.Name] = true
	}
	var missing []string
	for _, op := range cluster {
		if !have[op.Name] {
			missing = append(missing, fmt.Sprintf("%s (%s)", op.Name, op.Version))
		}
	}
	return missing
}
