// Package seedimage builds, reads and checks ibu seed images: OCI images
// whose layers hold a seed's ostree commit, /var, /etc changes and metadata,
// with config labels that tell whether a seed fits a cluster before any layer
// is pulled. Format 1 has one layer per role; format 2 chains a full layer
// and deltas (changed entries, ".wh." whiteouts) per content role.
//
// The precache image list is the config label dev.ibu.seed.images (a JSON
// array), next to the format-version and info labels: a standard config stays
// readable by skopeo, crane and ggcr's ConfigFile and survives ggcr's mutate,
// which a custom config media type or extra config fields would not; 500
// pinned references are about 60 KB, in a blob that has no size limit.
package seedimage
