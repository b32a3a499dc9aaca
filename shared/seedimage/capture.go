package seedimage

// CaptureManifest is what a seed capture says about the seed besides its
// content layers: the JSON object a node agent writes next to the layer
// artifacts for the seed-builder, which turns it into the config labels and
// the metadata layer.
type CaptureManifest struct {
	Info         SeedInfo `json:"info"`
	Images       []string `json:"images"`
	EtcDeletions []string `json:"etcDeletions"`
}
