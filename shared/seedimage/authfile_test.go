package seedimage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestAuthFileKeychain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	err := os.WriteFile(path, []byte(`{"auths":{
		"quay.io": {"auth": "cmVnOnB3"},
		"quay.io/openshift": {"username": "org", "password": "pw"},
		"quay.io/openshift/seeds": {"auth": "cmVwbzpwdw=="},
		"https://index.docker.io/v1/": {"auth": "aHViOnB3"}
	}}`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := loadAuthFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ repo, user string }{
		{"quay.io/openshift/seeds", "repo"},
		{"quay.io/openshift/seeds-other", "org"},
		{"quay.io/openshift/x/y", "org"},
		{"quay.io/other/seeds", "reg"},
		{"library/ubuntu", "hub"},
		{"registry.example.com/seeds", ""},
	} {
		repo, err := name.NewRepository(tc.repo)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(repo)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != tc.user {
			t.Errorf("%s: user %q, want %q", tc.repo, cfg.Username, tc.user)
		}
		if tc.user == "" && a != authn.Anonymous {
			t.Errorf("%s: want anonymous", tc.repo)
		}
	}

	if err := os.WriteFile(path, []byte(`{"auths":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadAuthFile(path); err == nil {
		t.Error("malformed auth file accepted")
	}
}
