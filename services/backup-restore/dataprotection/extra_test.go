package dataprotection_test

import (
	"errors"
	"maps"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"ibu.dev/services/backup-restore/dataprotection"
	"ibu.dev/shared/events"
)

// TestExtraManifestApplyTypes: an absent object is created; a present one
// is replaced by default or merged when its apply-type says so; a refused
// kind stops the run before anything is applied.
func TestExtraManifestApplyTypes(t *testing.T) {
	c := newCluster(t)
	c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: replaced}\ndata: {old: a1, kept: b1}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: merged}\ndata: {old: a1, kept: b1}\n")
	extra := []events.ObjectRef{c.configMap("extra", map[string]string{"m.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: replaced, annotations: {ibu.dev/apply-wave: "2"}}
data: {new: c1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: merged, annotations: {lca.openshift.io/apply-type: merge, ibu.dev/apply-wave: "1"}}
data: {new: c1}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: created}
data: {new: c1}
`})}
	n, err := dataprotection.ApplyExtraManifests(c.ctx, c.dc, c.mapper(), extra)
	if err != nil || n != 3 {
		t.Fatalf("applied %d, %v", n, err)
	}
	for name, want := range map[string]map[string]string{
		"replaced": {"new": "c1"},
		"merged":   {"old": "a1", "kept": "b1", "new": "c1"},
		"created":  {"new": "c1"},
	} {
		o, err := c.dc.Resource(gvrCM).Namespace(c.ns).Get(c.ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, _, _ := unstructured.NestedStringMap(o.Object, "data")
		if !maps.Equal(got, want) {
			t.Errorf("%s data %v, want %v", name, got, want)
		}
	}

	bad := []events.ObjectRef{c.configMap("bad", map[string]string{"m.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\napiVersion: machineconfiguration.openshift.io/v1\nkind: MachineConfig\nmetadata: {name: 99-kargs}\nspec: {}\n"})}
	_, err = dataprotection.ApplyExtraManifests(c.ctx, c.dc, c.mapper(), bad)
	var p *dataprotection.Problem
	if !errors.As(err, &p) || p.Reason != dataprotection.ReasonDisallowedManifest {
		t.Fatalf("err = %v, want DisallowedExtraManifest", err)
	}
	if _, err := c.dc.Resource(gvrCM).Namespace(c.ns).Get(c.ctx, "first", metav1.GetOptions{}); err == nil {
		t.Fatal("a manifest was applied before the refused one was noticed")
	}
}
