package kubetest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/manifest"
)

var (
	namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	crds       = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// Dynamic is a dynamic client for the server.
func (s *Server) Dynamic() (dynamic.Interface, error) {
	c, err := dynamic.NewForConfig(s.Config())
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return c, nil
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace of its own for the test and returns its
// name. It is not deleted afterwards: without a namespace controller a
// deleted namespace stays Terminating forever.
func (s *Server) Namespace(t testing.TB) string {
	t.Helper()
	dc, err := s.Dynamic()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	prefix := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(prefix) > 40 {
		prefix = strings.TrimRight(prefix[:40], "-")
	}
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetGenerateName(prefix + "-")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := dc.Resource(namespaces).Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create namespace: %v", err)
	}
	return got.GetName()
}

// InstallCRDs creates the CustomResourceDefinitions in the YAML documents
// (already present ones are left as they are) and waits until every one is
// Established. Do it once per package: the first create of a custom
// resource in the 2 s after its CRD appeared is held back by the server.
func (s *Server) InstallCRDs(ctx context.Context, docs ...[]byte) error {
	dc, err := s.Dynamic()
	if err != nil {
		return err
	}
	var names []string
	for _, d := range docs {
		objs, err := manifest.Decode(d)
		if err != nil {
			return fmt.Errorf("decode CRDs: %w", err)
		}
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				return fmt.Errorf("install CRDs: %s %s is not a CustomResourceDefinition", o.GetKind(), o.GetName())
			}
			if _, err := dc.Resource(crds).Create(ctx, o, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create CRD %s: %w", o.GetName(), err)
			}
			names = append(names, o.GetName())
		}
	}
	for _, n := range names {
		if err := waitEstablished(ctx, dc, n); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, dc dynamic.Interface, name string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		crd, err := dc.Resource(crds).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("CRD %s: %w", name, err)
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not established: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}
