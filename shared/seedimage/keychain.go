package seedimage

import "github.com/google/go-containerregistry/pkg/authn"

// AuthFileKeychain is the keychain WithAuthFile uses, for callers that
// reach other images of the same registries (precache reads the manifests
// of the seed's image list with it).
func AuthFileKeychain(path string) (authn.Keychain, error) {
	return loadAuthFile(path)
}
