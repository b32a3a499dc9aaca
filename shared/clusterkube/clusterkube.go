// Package clusterkube is the cluster registry's answer to "how do I reach
// this cluster's Kubernetes API": a kubeconfig per cluster, kept as a file
// in dev (Dir) or as a Secret on a hub (Secrets), or the in-cluster
// credentials when a service runs on the spoke itself (InCluster).
package clusterkube

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"ibu.dev/shared/events"
)

// ErrUnknownCluster: the registry has no kubeconfig for the cluster.
var ErrUnknownCluster = errors.New("no kubeconfig registered for the cluster")

// Registry returns a client config for a cluster's API.
type Registry interface {
	RESTConfig(ctx context.Context, clusterID string) (*rest.Config, error)
}

// Dir keeps one kubeconfig file per cluster: <dir>/<cluster>.kubeconfig.
type Dir string

// RESTConfig implements Registry.
func (d Dir) RESTConfig(_ context.Context, clusterID string) (*rest.Config, error) {
	if err := events.ValidID(clusterID); err != nil {
		return nil, fmt.Errorf("cluster id: %w", err)
	}
	path := filepath.Join(string(d), clusterID+".kubeconfig")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s: no file %s", ErrUnknownCluster, clusterID, path)
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of %s: %w", clusterID, err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(b)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of %s (%s): %w", clusterID, path, err)
	}
	return cfg, nil
}

// Secrets reads kubeconfigs from Secrets in the hub's API, by default ACM's
// layout: Secret <cluster>-admin-kubeconfig, key kubeconfig, in namespace
// <cluster>.
type Secrets struct {
	Client dynamic.Interface // the hub's API
	// Namespace holding the Secrets; empty means the cluster id.
	Namespace string
	// NameFormat turns the cluster id into the Secret's name; default
	// "%s-admin-kubeconfig".
	NameFormat string
	// Key of the kubeconfig in the Secret's data; default "kubeconfig".
	Key string
}

var secrets = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// RESTConfig implements Registry.
func (s Secrets) RESTConfig(ctx context.Context, clusterID string) (*rest.Config, error) {
	if err := events.ValidID(clusterID); err != nil {
		return nil, fmt.Errorf("cluster id: %w", err)
	}
	ns, format, key := s.Namespace, s.NameFormat, s.Key
	if ns == "" {
		ns = clusterID
	}
	if format == "" {
		format = "%s-admin-kubeconfig"
	}
	if key == "" {
		key = "kubeconfig"
	}
	name := fmt.Sprintf(format, clusterID)
	sec, err := s.Client.Resource(secrets).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s: no Secret %s/%s", ErrUnknownCluster, clusterID, ns, name)
	}
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s: %w", ns, name, err)
	}
	enc, ok, _ := unstructured.NestedString(sec.Object, "data", key)
	if !ok {
		return nil, fmt.Errorf("%w: %s: Secret %s/%s has no key %q", ErrUnknownCluster, clusterID, ns, name, key)
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s: %w", ns, name, err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(b)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s/%s: %w", ns, name, err)
	}
	return cfg, nil
}

// InCluster serves only the cluster the service runs on, with its
// service-account credentials (the spoke-side placement).
type InCluster struct {
	ClusterID string
	Config    *rest.Config // nil: rest.InClusterConfig()
}

// RESTConfig implements Registry.
func (c InCluster) RESTConfig(_ context.Context, clusterID string) (*rest.Config, error) {
	if clusterID != c.ClusterID {
		return nil, fmt.Errorf("%w: %s (this service runs on %s)", ErrUnknownCluster, clusterID, c.ClusterID)
	}
	if c.Config != nil {
		return rest.CopyConfig(c.Config), nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return cfg, nil
}
