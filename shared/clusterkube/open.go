package clusterkube

import (
	"errors"
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Spec says where a service finds the clusters' kubeconfigs; exactly one
// of Dir, Secrets and LocalCluster is set.
type Spec struct {
	// Dir: a directory of <cluster>.kubeconfig files (dev).
	Dir string
	// Secrets: kubeconfig Secrets in the hub's API (the hub reached with
	// HubKubeconfig, or in-cluster when it is empty).
	Secrets          bool
	HubKubeconfig    string
	SecretNamespace  string
	SecretNameFormat string
	SecretKey        string
	// LocalCluster: the service runs on this spoke and uses its in-cluster
	// credentials.
	LocalCluster string
}

// Open returns the Registry a Spec describes.
func Open(s Spec) (Registry, error) {
	n := 0
	for _, set := range []bool{s.Dir != "", s.Secrets, s.LocalCluster != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("cluster registry: set exactly one of a kubeconfig directory, hub Secrets, or the local cluster id")
	}
	switch {
	case s.Dir != "":
		return Dir(s.Dir), nil
	case s.LocalCluster != "":
		return InCluster{ClusterID: s.LocalCluster}, nil
	}
	var cfg *rest.Config
	var err error
	if s.HubKubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", s.HubKubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("hub API for kubeconfig Secrets: %w", err)
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("hub API for kubeconfig Secrets: %w", err)
	}
	return Secrets{Client: dc, Namespace: s.SecretNamespace, NameFormat: s.SecretNameFormat, Key: s.SecretKey}, nil
}
