package stability_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/testkit/kubetest"
)

var kube *kubetest.Server

// bslCRD is a minimal BackupStorageLocation CRD (Velero's real one is
// exercised by the backup-restore tests).
const bslCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: backupstoragelocations.velero.io}
spec:
  group: velero.io
  scope: Namespaced
  names: {plural: backupstoragelocations, singular: backupstoragelocation, kind: BackupStorageLocation, listKind: BackupStorageLocationList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// TestMain runs the package against one real API server with minimal
// OpenShift CRDs.
func TestMain(m *testing.M) {
	os.Exit(kubetest.Main(m, func(ctx context.Context, s *kubetest.Server) error {
		kube = s
		return s.InstallCRDs(ctx, kubetest.OpenShiftCRDs, []byte(bslCRD))
	}))
}

var (
	gvrCO   = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "clusteroperators"}
	gvrMCP  = schema.GroupVersionResource{Group: "machineconfiguration.openshift.io", Version: "v1", Resource: "machineconfigpools"}
	gvrNode = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	gvrCSV  = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "clusterserviceversions"}
	gvrCSR  = schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "certificatesigningrequests"}
	gvrDPA  = schema.GroupVersionResource{Group: "oadp.openshift.io", Version: "v1alpha1", Resource: "dataprotectionapplications"}
	gvrBSL  = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backupstoragelocations"}
)

// spoke is a test's cluster: cluster-scoped objects are shared by the
// package's API server, so the fixture deletes the ones it made.
type spoke struct {
	t   testing.TB
	ctx context.Context
	dc  dynamic.Interface
	ns  string
}

func newSpoke(t testing.TB) *spoke {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dc, err := kube.Dynamic()
	if err != nil {
		t.Fatal(err)
	}
	return &spoke{t: t, ctx: ctx, dc: dc, ns: kube.Namespace(t)}
}

// create makes an object (namespaced ones in the test's namespace), sets
// its status, and deletes it when the test ends.
func (s *spoke) create(gvr schema.GroupVersionResource, namespaced bool, name string, spec, status map[string]any) {
	s.t.Helper()
	o := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": name}}}
	o.SetAPIVersion(gvr.GroupVersion().String())
	o.SetKind(kinds[gvr.Resource])
	if spec != nil {
		o.Object["spec"] = spec
	}
	var res dynamic.ResourceInterface = s.dc.Resource(gvr)
	if namespaced {
		res = s.dc.Resource(gvr).Namespace(s.ns)
	}
	got, err := res.Create(s.ctx, o, metav1.CreateOptions{})
	if err != nil {
		s.t.Fatalf("create %s %s: %v", gvr.Resource, name, err)
	}
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = res.Delete(ctx, name, metav1.DeleteOptions{})
	})
	if status != nil {
		s.setStatus(gvr, namespaced, got, status)
	}
}

func (s *spoke) setStatus(gvr schema.GroupVersionResource, namespaced bool, o *unstructured.Unstructured, status map[string]any) {
	s.t.Helper()
	var res dynamic.ResourceInterface = s.dc.Resource(gvr)
	if namespaced {
		res = s.dc.Resource(gvr).Namespace(s.ns)
	}
	if o == nil {
		s.t.Fatal("setStatus of nil")
	}
	cur, err := res.Get(s.ctx, o.GetName(), metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	cur.Object["status"] = status
	if gvr == gvrBSL {
		_, err = res.Update(s.ctx, cur, metav1.UpdateOptions{})
	} else {
		_, err = res.UpdateStatus(s.ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		s.t.Fatalf("status of %s %s: %v", gvr.Resource, o.GetName(), err)
	}
}

// update sets the status of an existing object.
func (s *spoke) update(gvr schema.GroupVersionResource, namespaced bool, name string, status map[string]any) {
	s.t.Helper()
	o := &unstructured.Unstructured{}
	o.SetName(name)
	s.setStatus(gvr, namespaced, o, status)
}

var kinds = map[string]string{
	"clusteroperators": "ClusterOperator", "machineconfigpools": "MachineConfigPool", "nodes": "Node",
	"clusterserviceversions": "ClusterServiceVersion", "certificatesigningrequests": "CertificateSigningRequest",
	"dataprotectionapplications": "DataProtectionApplication", "backupstoragelocations": "BackupStorageLocation",
}

func conds(kv ...string) map[string]any {
	var cs []any
	for i := 0; i+1 < len(kv); i += 2 {
		cs = append(cs, map[string]any{"type": kv[i], "status": kv[i+1], "reason": "Test", "message": kv[i] + " is " + kv[i+1],
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)})
	}
	return map[string]any{"conditions": cs}
}

var operatorOK = conds("Available", "True", "Progressing", "False", "Degraded", "False")

// healthy lays out a healthy single-node OpenShift: operators, a pool, the
// node, operator CSVs, an approved CSR, a reconciled DPA and an available
// storage location.
func (s *spoke) healthy(prefix string) {
	for _, n := range []string{"etcd", "kube-apiserver"} {
		s.create(gvrCO, false, prefix+n, nil, operatorOK)
	}
	s.create(gvrMCP, false, prefix+"master", nil, map[string]any{"machineCount": int64(1), "readyMachineCount": int64(1), "updatedMachineCount": int64(1), "degradedMachineCount": int64(0)})
	s.create(gvrNode, false, prefix+"sno", nil, conds("Ready", "True", "NetworkUnavailable", "False"))
	s.create(gvrCSV, true, "oadp-operator.v1.4.0", nil, map[string]any{"phase": "Succeeded"})
	s.csr(prefix+"csr-approved", true)
	s.create(gvrDPA, true, "dpa", nil, conds("Reconciled", "True"))
	s.create(gvrBSL, true, "default", map[string]any{"provider": "aws"}, map[string]any{"phase": "Available"})
}

// csr creates a CertificateSigningRequest, approved or pending.
func (s *spoke) csr(name string, approved bool) {
	s.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:sno", Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		s.t.Fatal(err)
	}
	req := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	spec := map[string]any{"request": req, "signerName": "kubernetes.io/kubelet-serving", "usages": []any{"digital signature", "server auth"}}
	s.create(gvrCSR, false, name, spec, nil)
	if approved {
		cur, err := s.dc.Resource(gvrCSR).Get(s.ctx, name, metav1.GetOptions{})
		if err != nil {
			s.t.Fatal(err)
		}
		cur.Object["status"] = conds("Approved", "True")
		if _, err := s.dc.Resource(gvrCSR).Update(s.ctx, cur, metav1.UpdateOptions{}, "approval"); err != nil {
			s.t.Fatalf("approve CSR %s: %v", name, err)
		}
	}
}
