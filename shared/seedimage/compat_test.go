package seedimage

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func compatibleCluster() ClusterInfo {
	seed := testInfo()
	fp := seed.Fingerprint
	fp.Operators = []Operator{{Name: "lvms-operator", Version: "4.15.2"}}
	return ClusterInfo{Version: "4.15.20", Fingerprint: fp}
}

func TestCompatible(t *testing.T) {
	for _, tc := range []struct {
		name    string
		seed    func(*SeedInfo)
		cluster func(*ClusterInfo)
		want    []ReasonCode
		msg     string // a substring of the error
	}{
		{name: "compatible"},
		{name: "format", seed: func(s *SeedInfo) { s.FormatVersion = "3" }, want: []ReasonCode{FormatVersionUnsupported}},
		{name: "no format", seed: func(s *SeedInfo) { s.FormatVersion = "" }, want: []ReasonCode{FormatVersionUnsupported}},
		{name: "arch", cluster: func(c *ClusterInfo) { c.Architecture = "arm64" }, want: []ReasonCode{ArchitectureMismatch}, msg: "seed is amd64, cluster is arm64"},
		{name: "same version", cluster: func(c *ClusterInfo) { c.Version = "4.16.3" }, want: []ReasonCode{VersionNotNewer}},
		{name: "older seed", cluster: func(c *ClusterInfo) { c.Version = "4.17.0-rc.1" }, want: []ReasonCode{VersionNotNewer}},
		{name: "release over rc", cluster: func(c *ClusterInfo) { c.Version = "4.16.3-rc.1" }},
		{name: "bad versions", seed: func(s *SeedInfo) { s.Version = "4.16" }, cluster: func(c *ClusterInfo) { c.Version = "x" }, want: []ReasonCode{VersionInvalid, VersionInvalid}},
		{name: "platform", cluster: func(c *ClusterInfo) { c.Platform = "BareMetal" }, want: []ReasonCode{PlatformMismatch}},
		{name: "network", cluster: func(c *ClusterInfo) { c.NetworkType = "OpenShiftSDN" }, want: []ReasonCode{NetworkTypeMismatch}},
		{name: "ip family", cluster: func(c *ClusterInfo) { c.IPFamily = DualStack }, want: []ReasonCode{IPFamilyMismatch}},
		{name: "proxy on cluster", cluster: func(c *ClusterInfo) { c.Proxy = true }, want: []ReasonCode{ProxyMismatch}},
		{name: "proxy on seed", seed: func(s *SeedInfo) { s.Proxy = true }, want: []ReasonCode{ProxyMismatch}},
		{name: "fips", cluster: func(c *ClusterInfo) { c.FIPS = true }, want: []ReasonCode{FIPSMismatch}},
		{name: "trust bundle", cluster: func(c *ClusterInfo) { c.TrustBundleHash = "" }, want: []ReasonCode{TrustBundleMismatch}},
		{name: "storage", cluster: func(c *ClusterInfo) { c.ContainerStorage = StorageVarLibContainers }, want: []ReasonCode{ContainerStorageMismatch}},
		{
			name: "operators", want: []ReasonCode{MissingOperators}, msg: "metallb-operator (4.15.0), ptp-operator (4.15.1)",
			cluster: func(c *ClusterInfo) {
				c.Operators = append(c.Operators, Operator{Name: "metallb-operator", Version: "4.15.0"}, Operator{Name: "ptp-operator", Version: "4.15.1"})
			},
		},
		{name: "seed has more operators", cluster: func(c *ClusterInfo) { c.Operators = nil }},
		{
			name: "everything at once",
			seed: func(s *SeedInfo) { s.FormatVersion = "0" },
			cluster: func(c *ClusterInfo) {
				*c = ClusterInfo{Version: "4.18.0", Fingerprint: Fingerprint{
					Architecture: "arm64", Platform: "BareMetal", NetworkType: "OpenShiftSDN", IPFamily: IPv6,
					Proxy: true, FIPS: true, TrustBundleHash: "other", ContainerStorage: StorageVarLibContainers,
					Operators: []Operator{{Name: "ptp-operator", Version: "4.18.0"}},
				}}
			},
			want: []ReasonCode{
				FormatVersionUnsupported, ArchitectureMismatch, VersionNotNewer, PlatformMismatch, NetworkTypeMismatch,
				IPFamilyMismatch, ProxyMismatch, FIPSMismatch, TrustBundleMismatch, ContainerStorageMismatch, MissingOperators,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seed := testInfo()
			seed.FormatVersion = FormatVersion
			cluster := compatibleCluster()
			if tc.seed != nil {
				tc.seed(&seed)
			}
			if tc.cluster != nil {
				tc.cluster(&cluster)
			}
			err := Compatible(seed, cluster)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Compatible: %v", err)
				}
				return
			}
			var ie *IncompatibleError
			if !errors.As(err, &ie) || !errors.Is(err, ErrIncompatible) {
				t.Fatalf("Compatible = %v, want an *IncompatibleError", err)
			}
			var got []ReasonCode
			for _, r := range ie.Reasons {
				got = append(got, r.Code)
				if r.Message == "" {
					t.Errorf("%s has no message", r.Code)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("reasons = %v, want %v", got, tc.want)
			}
			if !ie.Has(tc.want[0]) {
				t.Errorf("Has(%s) = false", tc.want[0])
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}
