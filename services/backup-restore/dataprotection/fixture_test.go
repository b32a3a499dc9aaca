package dataprotection_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	veleroCRDs "github.com/vmware-tanzu/velero/config/crd/v1/crds"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"ibu.dev/services/backup-restore/dataprotection"
	"ibu.dev/shared/events"
	"ibu.dev/shared/manifest"
	"ibu.dev/shared/testkit/kubetest"
)

var kube *kubetest.Server

// TestMain runs every test of the package against one real API server with
// Velero's CRDs (from the velero module) and minimal OpenShift CRDs.
func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m, func(ctx context.Context, s *kubetest.Server) error {
		kube = s
		docs := [][]byte{kubetest.OpenShiftCRDs}
		for _, crd := range veleroCRDs.CRDs {
			b, err := json.Marshal(crd)
			if err != nil {
				return err
			}
			docs = append(docs, b)
		}
		return s.InstallCRDs(ctx, docs...)
	}))
}

var (
	gvrCM  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrBSL = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backupstoragelocations"}
	gvrDPA = schema.GroupVersionResource{Group: "oadp.openshift.io", Version: "v1alpha1", Resource: "dataprotectionapplications"}
)

// cluster is one test's view of the API server: its own namespace plays
// openshift-adp, with a reconciled DPA, an Available storage location and
// the simulated Velero.
type cluster struct {
	t      *testing.T
	ctx    context.Context
	dc     dynamic.Interface
	ns     string
	velero *veleroSim
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dc, err := kube.Dynamic()
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, ctx: ctx, dc: dc, ns: kube.Namespace(t)}
	c.apply(`apiVersion: velero.io/v1
kind: BackupStorageLocation
metadata: {name: default}
spec:
  provider: aws
  objectStorage: {bucket: ibu-test}
status: {phase: Available}
`)
	dpa := c.apply(`apiVersion: oadp.openshift.io/v1alpha1
kind: DataProtectionApplication
metadata: {name: dpa}
spec: {}
`)[0]
	c.setConditions(gvrDPA, dpa.GetName(), "Reconciled", "True")
	c.velero = startVeleroSim(t, dc, c.ns)
	return c
}

// apply creates the YAML's objects in the test's namespace (unless they
// name another) and returns them as created.
func (c *cluster) apply(doc string) []*unstructured.Unstructured {
	c.t.Helper()
	objs, err := manifest.Decode([]byte(doc))
	if err != nil {
		c.t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(kube.Config())))
	var out []*unstructured.Unstructured
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			c.t.Fatal(err)
		}
		var res dynamic.ResourceInterface = c.dc.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			if o.GetNamespace() == "" {
				o.SetNamespace(c.ns)
			}
			res = c.dc.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		got, err := res.Create(c.ctx, o, metav1.CreateOptions{})
		if err != nil {
			c.t.Fatalf("create %s %s: %v", gvk.Kind, o.GetName(), err)
		}
		out = append(out, got)
	}
	return out
}

func (c *cluster) setConditions(gvr schema.GroupVersionResource, name, typ, status string) {
	c.t.Helper()
	o, err := c.dc.Resource(gvr).Namespace(c.ns).Get(c.ctx, name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	o.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": typ, "status": status}}}
	if _, err := c.dc.Resource(gvr).Namespace(c.ns).UpdateStatus(c.ctx, o, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

// configMap stores documents (key -> YAML) in a ConfigMap of the test's
// namespace and returns its reference.
func (c *cluster) configMap(name string, data map[string]string) events.ObjectRef {
	c.t.Helper()
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": c.ns}}}
	d := map[string]any{}
	for k, v := range data {
		d[k] = v
	}
	cm.Object["data"] = d
	if _, err := c.dc.Resource(gvrCM).Namespace(c.ns).Create(c.ctx, cm, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	return events.ObjectRef{Namespace: c.ns, Name: name}
}

func (c *cluster) runner(gen int64, timeout time.Duration) *dataprotection.Runner {
	return &dataprotection.Runner{Client: c.dc, ClusterID: "sno-1", Generation: gen, WaitTimeout: timeout}
}

func (c *cluster) mapper() *restmapper.DeferredDiscoveryRESTMapper {
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(kube.Config())))
}

func (c *cluster) delete(gvr schema.GroupVersionResource, name string) {
	c.t.Helper()
	if err := c.dc.Resource(gvr).Namespace(c.ns).Delete(c.ctx, name, metav1.DeleteOptions{}); err != nil {
		c.t.Fatal(err)
	}
}
