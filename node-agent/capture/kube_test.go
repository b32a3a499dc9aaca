package capture_test

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"ibu.dev/node-agent/capture"
	"ibu.dev/shared/testkit/kubetest"
)

// The reporter reads the seed cluster's namespaces, CRDs, volumes and node
// readiness from a real API server: what the seed-builder refuses a seed
// for (a hub agent's namespace, a persistent volume, a node not Ready).
func TestKubeReporterReadsTheSeedCluster(t *testing.T) {
	kube := kubetest.Start(t)
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(kube.Config())
	rep, err := capture.NewKubeReporter(kube.Config())
	if err != nil {
		t.Fatal(err)
	}
	r, err := rep.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Healthy || r.HealthMessage != "no node registered" {
		t.Errorf("no nodes: healthy %v (%s)", r.Healthy, r.HealthMessage)
	}

	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "open-cluster-management-agent"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-data"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data"}},
	}}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	node, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "seed-lab"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
	if node, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := kube.InstallCRDs(ctx, kubetest.OpenShiftCRDs); err != nil {
		t.Fatal(err)
	}
	r, err = rep.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Namespaces, "open-cluster-management-agent") || !slices.Contains(r.PersistentVolumes, "pv-data") ||
		!slices.Contains(r.CRDs, "clusteroperators.config.openshift.io") {
		t.Errorf("report %+v", r)
	}
	if r.Healthy || !strings.Contains(r.HealthMessage, "seed-lab") {
		t.Errorf("a node not Ready: healthy %v (%s)", r.Healthy, r.HealthMessage)
	}
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r, err = rep.Report(ctx); err != nil || !r.Healthy {
		t.Errorf("every node Ready: healthy %v (%s), %v", r.Healthy, r.HealthMessage, err)
	}
}
