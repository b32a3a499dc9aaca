package seedimage

import "github.com/google/go-containerregistry/pkg/v1/types"

// FormatVersion is the seed format this package writes and accepts.
const FormatVersion = "1"

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
