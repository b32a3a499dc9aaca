package seedimage

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// fileKeychain resolves credentials from a docker config.json style file.
// Unlike authn.DefaultKeychain it reads one explicit file (no environment,
// no credential helpers) and honours repository-scoped keys as podman does.
type fileKeychain map[string]authn.AuthConfig

func loadAuthFile(path string) (fileKeychain, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	var f struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	kc := fileKeychain{}
	for k, v := range f.Auths {
		kc[normalizeAuthKey(k)] = v
	}
	return kc, nil
}

// Resolve tries "host/a/b", then "host/a", then "host".
func (kc fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	key := r.String()
	for {
		if cfg, ok := kc[key]; ok {
			return authn.FromConfig(cfg), nil
		}
		i := strings.LastIndex(key, "/")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	if cfg, ok := kc[r.RegistryStr()]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
}

// normalizeAuthKey maps the legacy spellings ("https://index.docker.io/v1/",
// "docker.io/x") to what go-containerregistry resolves ("index.docker.io/x").
func normalizeAuthKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	k = strings.TrimSuffix(k, "/")
	k = strings.TrimSuffix(strings.TrimSuffix(k, "/v1"), "/v2")
	if k == "docker.io" || strings.HasPrefix(k, "docker.io/") {
		k = "index." + k
	}
	return k
}
