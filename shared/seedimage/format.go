package seedimage

import "github.com/google/go-containerregistry/pkg/v1/types"

// FormatVersion is the seed format this package writes and accepts: one
// layer per role.
const FormatVersion = "1"

// FormatVersionChained is the format of a seed whose content roles may
// each carry an ordered chain of layers: the first a full layer, each
// later one a delta (new or changed entries, and OCI whiteouts
// ".wh.<name>" for deleted paths) applied over the ones before it. A seed
// with one layer per role is always written as FormatVersion, so readers
// that know only format 1 refuse a chained seed instead of laying only the
// first layer of each chain.
const FormatVersionChained = "2"

// SupportedFormat reports whether this package reads format version v.
func SupportedFormat(v string) bool { return v == FormatVersion || v == FormatVersionChained }

// AnnotationLayerIndex is set, in a chained seed, on every layer of a role
// that has more than one: its position in the role's chain, from "0".
const AnnotationLayerIndex = "dev.ibu.seed.layer-index"

// MaxChain bounds the layers of one role in a chained seed.
const MaxChain = 8

// WhiteoutPrefix marks, in a delta layer (position 1 or later of a chain),
// an entry that deletes the path named by the rest of its base name.
const WhiteoutPrefix = ".wh."

// Config labels. All three are required.
const (
	// LabelFormatVersion holds FormatVersion.
	LabelFormatVersion = "dev.ibu.seed.format-version"
	// LabelInfo holds the SeedInfo as JSON.
	LabelInfo = "dev.ibu.seed.info"
	// LabelImages holds the precache image list as a JSON array of
	// "name@sha256:<hex>" references.
	LabelImages = "dev.ibu.seed.images"
)

// AnnotationRole is set on every layer descriptor in the manifest so that a
// reader finds a layer by what it holds, not by its position.
const AnnotationRole = "dev.ibu.seed.layer"

// Role says what a layer holds.
type Role string

// The four layers of a v1 seed, in manifest order: the rarely changing,
// largest content first.
const (
	RoleOstree   Role = "ostree"   // the ostree commit as an archive-mode repo (tar)
	RoleVar      Role = "var"      // the seed's /var (tar)
	RoleEtc      Role = "etc"      // the seed's /etc changes (tar)
	RoleMetadata Role = "metadata" // etc.deletions and extra files (tar)
)

// Chainable reports whether a role may carry a chain of layers (the
// content roles; the metadata layer is always one).
func (r Role) Chainable() bool { return r == RoleOstree || r == RoleVar || r == RoleEtc }

// Roles returns every layer role of format v1, in manifest order.
func Roles() []Role { return []Role{RoleOstree, RoleVar, RoleEtc, RoleMetadata} }

// MediaType returns the layer media type of the role, "" for an unknown role.
func (r Role) MediaType() types.MediaType {
	switch r {
	case RoleOstree, RoleVar, RoleEtc, RoleMetadata:
		return types.MediaType("application/vnd.ibu.seed." + string(r) + ".v1.tar+gzip")
	}
	return ""
}

// Names of the files inside the metadata layer that this package owns.
const (
	// EtcDeletionsFile lists the absolute paths under /etc that the seed
	// deleted, one per line, sorted.
	EtcDeletionsFile = "etc.deletions"
)
