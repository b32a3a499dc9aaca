package kubetest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"

	"ibu.dev/shared/manifest"
	"ibu.dev/shared/testkit/kubetest"
)

var kube *kubetest.Server

const widgetCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.ibu.dev
spec:
  group: test.ibu.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, minimum: 1}
          status:
            type: object
            properties:
              phase: {type: string}
`

func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m, func(ctx context.Context, s *kubetest.Server) error {
		kube = s
		return s.InstallCRDs(ctx, []byte(widgetCRD), kubetest.OpenShiftCRDs)
	}))
}

func TestCustomResourceRoundTrip(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dc, err := kube.Dynamic()
	if err != nil {
		t.Fatal(err)
	}
	ns := kube.Namespace(t)
	gvr := schema.GroupVersionResource{Group: "test.ibu.dev", Version: "v1", Resource: "widgets"}
	objs, err := manifest.Decode([]byte("apiVersion: test.ibu.dev/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n---\n"))
	if err != nil || len(objs) != 1 {
		t.Fatalf("decode: %v, %d objects", err, len(objs))
	}
	w, err := dc.Resource(gvr).Namespace(ns).Create(ctx, objs[0], metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(w.Object, "Ready", "status", "phase")
	if _, err := dc.Resource(gvr).Namespace(ns).UpdateStatus(ctx, w, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := dc.Resource(gvr).Namespace(ns).Get(ctx, "w", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _ := unstructured.NestedString(got.Object, "status", "phase"); p != "Ready" {
		t.Fatalf("status.phase = %q, want Ready", p)
	}
	// The schema is enforced: this is a real API server.
	bad := objs[0].DeepCopy()
	bad.SetName("bad")
	_ = unstructured.SetNestedField(bad.Object, int64(0), "spec", "size")
	if _, err := dc.Resource(gvr).Namespace(ns).Create(ctx, bad, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "spec.size") {
		t.Fatalf("create with size 0: err = %v, want a validation error on spec.size", err)
	}
}

func TestKubeconfig(t *testing.T) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kube.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != kube.Config().Host {
		t.Fatalf("kubeconfig host %q, want %q", cfg.Host, kube.Config().Host)
	}
}

func TestMissingBinariesFail(t *testing.T) {
	t.Setenv(kubetest.EnvBinDir, t.TempDir())
	_, err := kubetest.FindBinaries()
	if err == nil || !strings.Contains(err.Error(), "run make kube-bins") {
		t.Fatalf("err = %v, want one that says to run make kube-bins", err)
	}
}
