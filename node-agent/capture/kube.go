package capture

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// KubeReporter reports the seed cluster from its own API: one LIST each of
// namespaces, CustomResourceDefinitions, PersistentVolumes and nodes. The
// cluster is healthy when every node is Ready.
type KubeReporter struct {
	Client dynamic.Interface
}

// NewKubeReporter returns a KubeReporter on cfg.
func NewKubeReporter(cfg *rest.Config) (*KubeReporter, error) {
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("seed cluster API client: %w", err)
	}
	return &KubeReporter{Client: c}, nil
}

var (
	gvrNamespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrCRDs       = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	gvrPVs        = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}
	gvrNodes      = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
)

// Report implements ClusterReporter.
func (k *KubeReporter) Report(ctx context.Context) (ClusterReport, error) {
	var rep ClusterReport
	for _, l := range []struct {
		gvr  schema.GroupVersionResource
		into *[]string
	}{{gvrNamespaces, &rep.Namespaces}, {gvrCRDs, &rep.CRDs}, {gvrPVs, &rep.PersistentVolumes}} {
		list, err := k.Client.Resource(l.gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				continue // a type this cluster does not serve holds nothing
			}
			return rep, fmt.Errorf("list %s: %w", l.gvr.Resource, err)
		}
		for _, it := range list.Items {
			*l.into = append(*l.into, it.GetName())
		}
		slices.Sort(*l.into)
	}
	nodes, err := k.Client.Resource(gvrNodes).List(ctx, metav1.ListOptions{})
	if err != nil {
		return rep, fmt.Errorf("list nodes: %w", err)
	}
	var notReady []string
	for _, n := range nodes.Items {
		if !nodeReady(n) {
			notReady = append(notReady, n.GetName())
		}
	}
	switch {
	case len(nodes.Items) == 0:
		rep.HealthMessage = "no node registered"
	case len(notReady) > 0:
		rep.HealthMessage = "nodes not Ready: " + strings.Join(notReady, ", ")
	default:
		rep.Healthy, rep.HealthMessage = true, fmt.Sprintf("%d node(s) Ready", len(nodes.Items))
	}
	return rep, nil
}

func nodeReady(n unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(n.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	return false
}
