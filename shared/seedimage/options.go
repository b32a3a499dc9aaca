package seedimage

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures how Push, Pull and Inspect reach a registry.
type Option func(*options)

type options struct {
	auth      authn.Authenticator
	authFile  string
	keychain  authn.Keychain
	transport http.RoundTripper
	insecure  bool
}

// WithAuth uses these credentials for every request.
func WithAuth(a authn.Authenticator) Option { return func(o *options) { o.auth = a } }

// WithAuthFile takes credentials from a docker config.json style file (a
// Kubernetes .dockerconfigjson pull secret, podman's auth.json). Its keys
// are a registry host or a "host/repository" prefix; the longest match wins.
func WithAuthFile(path string) Option { return func(o *options) { o.authFile = path } }

// WithKeychain resolves credentials through k. Without any credential
// option, authn.DefaultKeychain (the user's docker and podman config) is used.
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithTransport sends requests through rt (proxies, custom CAs, tests).
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// WithInsecure allows plain HTTP to a registry that is not on loopback
// (loopback registries are always reached over HTTP when HTTPS fails).
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

func newOptions(opts []Option) *options {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

func (o *options) parse(ref string) (name.Reference, error) {
	var nopts []name.Option
	if o.insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadImageRef, err)
	}
	return r, nil
}

// remote turns the options into go-containerregistry remote options.
func (o *options) remote(ctx context.Context) ([]remote.Option, error) {
	ropts := []remote.Option{remote.WithContext(ctx)}
	switch {
	case o.auth != nil:
		ropts = append(ropts, remote.WithAuth(o.auth))
	case o.authFile != "":
		kc, err := loadAuthFile(o.authFile)
		if err != nil {
			return nil, err
		}
		ropts = append(ropts, remote.WithAuthFromKeychain(kc))
	case o.keychain != nil:
		ropts = append(ropts, remote.WithAuthFromKeychain(o.keychain))
	default:
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	if o.transport != nil {
		ropts = append(ropts, remote.WithTransport(o.transport))
	}
	return ropts, nil
}
