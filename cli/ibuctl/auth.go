package ibuctl

import "github.com/google/go-containerregistry/pkg/authn"

// staticAuth is a registry user and password.
type staticAuth struct{ user, pass string }

func (a *staticAuth) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: a.user, Password: a.pass}, nil
}
