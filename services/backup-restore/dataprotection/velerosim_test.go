package dataprotection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

var (
	gvrBackup  = velerov1.SchemeGroupVersion.WithResource("backups")
	gvrRestore = velerov1.SchemeGroupVersion.WithResource("restores")
)

// outcome is what the simulated Velero makes of one object.
type outcome struct {
	Phase         string // final phase; "InProgress" leaves it running forever
	FailureReason string
	Errors        int64
}

// veleroSim stands in for Velero's server, which needs object storage: it
// watches the Backups and Restores of one namespace and moves their phases
// New -> InProgress -> Completed (or the outcome it was told). A Backup
// keeps a copy of the Deployments of its includedNamespaces; a Restore
// recreates the missing ones from its Backup, as Velero would.
type veleroSim struct {
	t    testing.TB
	dc   dynamic.Interface
	ns   string
	mu   sync.Mutex
	out  map[string]outcome // by kind/name
	log  []string           // "created Backup/x", "finished Backup/x Completed"
	kept map[string][]*unstructured.Unstructured
}

var gvrDeploy = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}

func startVeleroSim(t testing.TB, dc dynamic.Interface, ns string) *veleroSim {
	v := &veleroSim{t: t, dc: dc, ns: ns, out: map[string]outcome{}, kept: map[string][]*unstructured.Unstructured{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, gvr := range []schema.GroupVersionResource{gvrBackup, gvrRestore} {
		w, err := dc.Resource(gvr).Namespace(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatalf("velero sim: watch %s: %v", gvr.Resource, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range w.ResultChan() {
				if ev.Type != watch.Added {
					continue
				}
				if o, ok := ev.Object.(*unstructured.Unstructured); ok {
					v.reconcile(ctx, gvr, o)
				}
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return v
}

// set tells the simulation how an object will end.
func (v *veleroSim) set(kind, name string, o outcome) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.out[kind+"/"+name] = o
}

func (v *veleroSim) record(s string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.log = append(v.log, s)
}

func (v *veleroSim) events() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.log...)
}

func (v *veleroSim) reconcile(ctx context.Context, gvr schema.GroupVersionResource, o *unstructured.Unstructured) {
	kind, name := o.GetKind(), o.GetName()
	if p, _, _ := unstructured.NestedString(o.Object, "status", "phase"); p != "" {
		return
	}
	v.record("created " + kind + "/" + name)
	v.mu.Lock()
	want, ok := v.out[kind+"/"+name]
	v.mu.Unlock()
	if !ok {
		want = outcome{Phase: "Completed"}
	}
	if err := v.setStatus(ctx, gvr, name, map[string]any{"phase": "InProgress"}); err != nil {
		if ctx.Err() != nil {
			return // the test is over
		}
		v.t.Errorf("velero sim: %s %s: %v", kind, name, err)
		return
	}
	if want.Phase == "InProgress" {
		return
	}
	if want.Phase == "Completed" {
		var err error
		if kind == "Backup" {
			err = v.keep(ctx, o)
		} else {
			err = v.restore(ctx, o)
		}
		if err != nil {
			want = outcome{Phase: "Failed", FailureReason: err.Error()}
		}
	}
	st := map[string]any{"phase": want.Phase}
	if want.FailureReason != "" {
		st["failureReason"] = want.FailureReason
	}
	if want.Errors > 0 {
		st["errors"] = want.Errors
	}
	if err := v.setStatus(ctx, gvr, name, st); err != nil {
		if ctx.Err() != nil {
			return // the test is over
		}
		v.t.Errorf("velero sim: %s %s: %v", kind, name, err)
		return
	}
	v.record("finished " + kind + "/" + name + " " + want.Phase)
}

// setStatus replaces status (Velero's CRDs have no status subresource).
func (v *veleroSim) setStatus(ctx context.Context, gvr schema.GroupVersionResource, name string, st map[string]any) error {
	for {
		cur, err := v.dc.Resource(gvr).Namespace(v.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Object["status"] = st
		_, err = v.dc.Resource(gvr).Namespace(v.ns).Update(ctx, cur, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}

func (v *veleroSim) keep(ctx context.Context, backup *unstructured.Unstructured) error {
	nss, _, _ := unstructured.NestedStringSlice(backup.Object, "spec", "includedNamespaces")
	var kept []*unstructured.Unstructured
	for _, ns := range nss {
		list, err := v.dc.Resource(gvrDeploy).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("back up deployments of %s: %w", ns, err)
		}
		for i := range list.Items {
			kept = append(kept, list.Items[i].DeepCopy())
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.kept[backup.GetName()] = kept
	return nil
}

func (v *veleroSim) restore(ctx context.Context, restore *unstructured.Unstructured) error {
	var r velerov1.Restore
	b, _ := json.Marshal(restore.Object)
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	v.mu.Lock()
	kept, ok := v.kept[r.Spec.BackupName]
	v.mu.Unlock()
	if !ok {
		return fmt.Errorf("backup %s has no content", r.Spec.BackupName)
	}
	for _, o := range kept {
		c := o.DeepCopy()
		c.SetResourceVersion("")
		c.SetUID("")
		c.SetCreationTimestamp(metav1.Time{})
		c.SetManagedFields(nil)
		delete(c.Object, "status")
		if _, err := v.dc.Resource(gvrDeploy).Namespace(c.GetNamespace()).Create(ctx, c, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("restore deployment %s: %w", c.GetName(), err)
		}
	}
	return nil
}
