// Package cri is the node's real image store: the container runtime's CRI
// image service (CRI-O on OpenShift, containerd elsewhere) over its unix
// socket, through k8s.io/cri-client. Images pulled here are the ones the
// kubelet of the new stateroot finds, since both stateroots share the
// runtime's storage.
package cri

import (
	"context"

	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"ibu.dev/node-agent/host"
)

// Images is a host.ImageStore over a CRI image service. The CRI has no
// pull progress: an image's bytes are reported when its pull ends.
type Images struct {
	svc      internalapi.ImageManagerService
	keychain authn.Keychain
}

var _ host.ImageStore = (*Images)(nil)

// Option configures New.
type Option func(*Images)

// WithKeychain resolves registry credentials for pulls (the node's pull
// secret); without it pulls are anonymous unless the runtime has its own.
func WithKeychain(k authn.Keychain) Option { return func(i *Images) { i.keychain = k } }

// New connects to the runtime's socket, e.g. unix:///var/run/crio/crio.sock.
func New(endpoint string, timeout time.Duration, opts ...Option) (*Images, error) {
	svc, err := remote.NewRemoteImageService(endpoint, timeout, noop.NewTracerProvider(), nil)
	if err != nil {
		return nil, fmt.Errorf("CRI image service at %s: %w", endpoint, err)
	}
	i := &Images{svc: svc}
	for _, o := range opts {
		o(i)
	}
	return i, nil
}

// Inventory lists every repo digest the runtime holds (name@sha256:...).
func (i *Images) Inventory(ctx context.Context) ([]string, error) {
	imgs, err := i.svc.ListImages(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("CRI list images: %w", err)
	}
	var out []string
	for _, img := range imgs {
		out = append(out, img.RepoDigests...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Pull pulls image unless the runtime has it, and returns its size.
func (i *Images) Pull(ctx context.Context, image string) (int64, error) {
	spec := &runtimeapi.ImageSpec{Image: image}
	if st, err := i.svc.ImageStatus(ctx, spec, false); err == nil && st.GetImage() != nil {
		return 0, nil
	}
	auth, err := i.auth(image)
	if err != nil {
		return 0, fmt.Errorf("pull %s: credentials: %w", image, err)
	}
	if _, err := i.svc.PullImage(ctx, spec, auth, nil); err != nil {
		return 0, fmt.Errorf("pull %s: %w", image, classify(err))
	}
	st, err := i.svc.ImageStatus(ctx, spec, false)
	if err != nil || st.GetImage() == nil {
		return 0, fmt.Errorf("pull %s: the runtime does not list it after the pull: %v", image, err)
	}
	return int64(st.GetImage().GetSize()), nil
}

// Remove deletes image; absent is not an error.
func (i *Images) Remove(ctx context.Context, image string) error {
	err := i.svc.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: image})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("remove %s: %w", image, err)
	}
	return nil
}

func (i *Images) auth(image string) (*runtimeapi.AuthConfig, error) {
	if i.keychain == nil {
		return nil, nil
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, err
	}
	a, err := i.keychain.Resolve(ref.Context())
	if err != nil {
		return nil, err
	}
	cfg, err := a.Authorization()
	if err != nil || cfg == nil || *cfg == (authn.AuthConfig{}) {
		return nil, err
	}
	return &runtimeapi.AuthConfig{Username: cfg.Username, Password: cfg.Password, Auth: cfg.Auth,
		IdentityToken: cfg.IdentityToken, RegistryToken: cfg.RegistryToken, ServerAddress: ref.Context().RegistryStr()}, nil
}

// classify marks the failures a retry cannot fix. Runtimes report them
// with different gRPC codes (containerd: NotFound; CRI-O: Unknown with the
// registry's words), so the message is read too.
func classify(err error) error {
	msg := strings.ToLower(err.Error())
	switch {
	case status.Code(err) == codes.NotFound, strings.Contains(msg, ": not found"), strings.Contains(msg, "manifest unknown"),
		strings.Contains(msg, "name unknown"):
		return fmt.Errorf("%w: %w", host.ErrImageNotFound, err)
	case status.Code(err) == codes.Unauthenticated, status.Code(err) == codes.PermissionDenied,
		strings.Contains(msg, "401 unauthorized"), strings.Contains(msg, "403 forbidden"):
		return fmt.Errorf("%w: %w", host.ErrImageUnauthorized, err)
	}
	return err
}
