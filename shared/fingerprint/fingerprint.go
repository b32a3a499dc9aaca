// Package fingerprint describes what must be equal on a seed cluster and a
// target cluster for the seed's stateroot to boot on the target. The seed
// image's info label, the agent's registration event and the compatibility
// check all use this one type.
package fingerprint

// IPFamily is the IP stack of a cluster's node network.
type IPFamily string

// The IP families ibu knows.
const (
	IPv4      IPFamily = "IPv4"
	IPv6      IPFamily = "IPv6"
	DualStack IPFamily = "DualStack"
)

// Valid reports whether f is one of the known families.
func (f IPFamily) Valid() bool { return f == IPv4 || f == IPv6 || f == DualStack }

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

// Fingerprint is what must be equal on the seed and on the cluster.
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
