package clusterkube_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"ibu.dev/shared/clusterkube"
	"ibu.dev/shared/testkit/kubetest"
)

// TestRegistries: a kubeconfig file and a hub Secret both lead to a
// working client of the cluster; an unknown cluster is ErrUnknownCluster.
func TestRegistries(t *testing.T) {
	kube := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sno-1.kubeconfig"), kube.Kubeconfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	hub, err := kube.Dynamic()
	if err != nil {
		t.Fatal(err)
	}
	ns := kube.Namespace(t)
	secret := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "sno-2-admin-kubeconfig", "namespace": ns},
		"data":     map[string]any{"kubeconfig": base64.StdEncoding.EncodeToString(kube.Kubeconfig())}}}
	if _, err := hub.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}).Namespace(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	regs := []struct {
		name    string
		reg     clusterkube.Registry
		cluster string
	}{
		{"dir", clusterkube.Dir(dir), "sno-1"},
		{"secrets", clusterkube.Secrets{Client: hub, Namespace: ns}, "sno-2"},
		{"in-cluster", clusterkube.InCluster{ClusterID: "sno-3", Config: kube.Config()}, "sno-3"},
	}
	for _, r := range regs {
		t.Run(r.name, func(t *testing.T) {
			cfg, err := r.reg.RESTConfig(ctx, r.cluster)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != kube.Config().Host {
				t.Fatalf("host %s, want %s", cfg.Host, kube.Config().Host)
			}
			if _, err := r.reg.RESTConfig(ctx, "sno-99"); !errors.Is(err, clusterkube.ErrUnknownCluster) {
				t.Fatalf("unknown cluster: err = %v, want ErrUnknownCluster", err)
			}
		})
	}
}
