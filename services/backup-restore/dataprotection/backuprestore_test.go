package dataprotection_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"ibu.dev/services/backup-restore/dataprotection"
	"ibu.dev/shared/events"
)

// seedDocument is the example of the seed document: a Backup of a
// namespace with a Deployment and a PVC, and its Restore in wave 4.
func seedDocument(oadpNS, appNS string) map[string]string {
	return map[string]string{"backup-workload.yaml": fmt.Sprintf(`apiVersion: velero.io/v1
kind: Backup
metadata:
  labels:
    velero.io/storage-location: default
  name: backup-app
  namespace: %[1]s
spec:
  includedNamespaces:
  - %[2]s
  includedNamespaceScopedResources:
  - persistentvolumeclaims
  - deployments
  excludedClusterScopedResources:
  - persistentVolumes
---
apiVersion: velero.io/v1
kind: Restore
metadata:
  name: test-app
  namespace: %[1]s
  labels:
    velero.io/storage-location: default
  annotations:
    lca.openshift.io/apply-wave: "4"
spec:
  backupName:
    backup-app
`, oadpNS, appNS)}
}

const workload = `apiVersion: apps/v1
kind: Deployment
metadata: {name: exception-app-deployment}
spec:
  replicas: 1
  selector: {matchLabels: {app: exception-app}}
  template:
    metadata: {labels: {app: exception-app}}
    spec:
      containers:
      - name: app
        image: quay.io/example/exception-app:1
        volumeMounts: [{name: data, mountPath: /data}]
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: my-pvc}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: my-pvc}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: general
  resources: {requests: {storage: 1Gi}}
`

// TestSeedDocumentRoundTrip: validate in Prep, back up before the pivot,
// lose the Deployment (as the new stateroot would), then apply the extra
// manifests and restore: the Deployment is back and the Velero objects
// carry the cluster's label.
func TestSeedDocumentRoundTrip(t *testing.T) {
	c := newCluster(t)
	app := kube.Namespace(t)
	for _, o := range c.apply(strings.ReplaceAll(workload, "metadata: {name:", "metadata: {namespace: "+app+", name:")) {
		t.Logf("workload: %s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
	}
	oadp := []events.ObjectRef{c.configMap("oadp-cm-example", seedDocument(c.ns, app))}
	extra := []events.ObjectRef{c.configMap("extra", map[string]string{"cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: site-config}
data: {site: edge-7}
`})}

	content, err := dataprotection.Validate(c.ctx, c.dc, oadp, extra)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	r := c.runner(4, time.Minute)
	backups, err := r.Backup(c.ctx, content)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if want := []events.VeleroObject{{Name: "backup-app", Wave: dataprotection.LastWave, Phase: "Completed"}}; !slices.Equal(backups, want) {
		t.Fatalf("backups %+v, want %+v", backups, want)
	}
	b, err := c.dc.Resource(gvrBackup).Namespace(c.ns).Get(c.ctx, "backup-app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := b.GetLabels(); l[dataprotection.LabelCluster] != "sno-1" || l[dataprotection.LabelGeneration] != "4" || l["velero.io/storage-location"] != "default" {
		t.Fatalf("backup labels %v", l)
	}

	// The pivot: the new stateroot has no workload.
	if err := c.dc.Resource(gvrDeploy).Namespace(app).Delete(c.ctx, "exception-app-deployment", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	n, err := dataprotection.ApplyExtraManifests(c.ctx, c.dc, c.mapper(), extra)
	if err != nil || n != 1 {
		t.Fatalf("extra manifests: %d applied, %v", n, err)
	}
	restores, err := r.Restore(c.ctx, content)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if want := []events.VeleroObject{{Name: "test-app", Wave: 4, Phase: "Completed"}}; !slices.Equal(restores, want) {
		t.Fatalf("restores %+v, want %+v", restores, want)
	}
	d, err := c.dc.Resource(gvrDeploy).Namespace(app).Get(c.ctx, "exception-app-deployment", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the deployment was not restored: %v", err)
	}
	if img, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers"); len(img) != 1 {
		t.Fatalf("restored deployment has %d containers", len(img))
	}
	if _, err := c.dc.Resource(gvrCM).Namespace(c.ns).Get(c.ctx, "site-config", metav1.GetOptions{}); err != nil {
		t.Fatalf("extra manifest not applied: %v", err)
	}
}

// TestTwelveWaves: wave N+1 starts only after all of wave N completed, in
// numeric order (10 after 2), names sorted within a wave, unannotated last.
func TestTwelveWaves(t *testing.T) {
	c := newCluster(t)
	var docs []string
	wantOrder := []string{}
	for w := 12; w >= 1; w-- { // written in reverse: the order must come from the waves
		for _, n := range []string{"b", "a"} {
			name := fmt.Sprintf("%s-w%d", n, w)
			docs = append(docs, fmt.Sprintf("apiVersion: velero.io/v1\nkind: Backup\nmetadata:\n  name: %s\n  annotations: {ibu.dev/apply-wave: %q}\nspec: {}\n", name, strconv.Itoa(w)))
			docs = append(docs, fmt.Sprintf("apiVersion: velero.io/v1\nkind: Restore\nmetadata:\n  name: r-%s\n  annotations: {ibu.dev/apply-wave: %q}\nspec: {backupName: %s}\n", name, strconv.Itoa(w), name))
		}
	}
	docs = append(docs, "apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: unannotated}\nspec: {}\n",
		"apiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: r-unannotated}\nspec: {backupName: unannotated}\n")
	for w := 1; w <= 12; w++ {
		wantOrder = append(wantOrder, fmt.Sprintf("a-w%d", w), fmt.Sprintf("b-w%d", w))
	}
	wantOrder = append(wantOrder, "unannotated")
	oadp := []events.ObjectRef{c.configMap("waves", map[string]string{"all.yaml": strings.Join(docs, "---\n")})}
	content, err := dataprotection.Validate(c.ctx, c.dc, oadp, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := c.runner(2, time.Minute)
	done, err := r.Backup(c.ctx, content)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range done {
		got = append(got, d.Name)
	}
	if !slices.Equal(got, wantOrder) {
		t.Fatalf("backups in order %v, want %v", got, wantOrder)
	}
	checkWaveOrder(t, c.velero.events(), "Backup/")

	if _, err := r.Restore(c.ctx, content); err != nil {
		t.Fatal(err)
	}
	checkWaveOrder(t, c.velero.events(), "Restore/r-")
}

// checkWaveOrder checks the simulated Velero's log: no object of a wave was
// created before every object of the waves before it had finished.
func checkWaveOrder(t *testing.T, log []string, prefix string) {
	t.Helper()
	wave := func(name string) int {
		if i := strings.LastIndex(name, "-w"); i >= 0 {
			n, _ := strconv.Atoi(name[i+2:])
			return n
		}
		return dataprotection.LastWave
	}
	finished := map[int]int{}
	total := map[int]int{}
	for _, l := range log {
		f := strings.Fields(l)
		if !strings.HasPrefix(f[1], prefix) {
			continue
		}
		name := strings.TrimPrefix(f[1], prefix)
		if f[0] == "created" {
			total[wave(name)]++
		}
	}
	for _, l := range log {
		f := strings.Fields(l)
		if !strings.HasPrefix(f[1], prefix) {
			continue
		}
		name := strings.TrimPrefix(f[1], prefix)
		w := wave(name)
		switch f[0] {
		case "created":
			for earlier, n := range total {
				if earlier < w && finished[earlier] != n {
					t.Fatalf("%s created while wave %d had %d of %d finished:\n%s", f[1], earlier, finished[earlier], n, strings.Join(log, "\n"))
				}
			}
		case "finished":
			finished[w]++
		}
	}
	if len(total) != 13 {
		t.Fatalf("saw %d waves of %s, want 13", len(total), prefix)
	}
}

// TestPartiallyFailedBackupStops: a PartiallyFailed Backup fails the run
// with Velero's reason, and the next wave is never created.
func TestPartiallyFailedBackupStops(t *testing.T) {
	c := newCluster(t)
	oadp := []events.ObjectRef{c.configMap("oadp", map[string]string{"a.yaml": `apiVersion: velero.io/v1
kind: Backup
metadata: {name: apps, annotations: {ibu.dev/apply-wave: "1"}}
spec: {}
---
apiVersion: velero.io/v1
kind: Backup
metadata: {name: later, annotations: {ibu.dev/apply-wave: "2"}}
spec: {}
---
apiVersion: velero.io/v1
kind: Restore
metadata: {name: apps}
spec: {backupName: apps}
---
apiVersion: velero.io/v1
kind: Restore
metadata: {name: later}
spec: {backupName: later}
`})}
	c.velero.set("Backup", "apps", outcome{Phase: "PartiallyFailed", FailureReason: "volume snapshot of my-pvc failed", Errors: 2})
	content, err := dataprotection.Validate(c.ctx, c.dc, oadp, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.runner(5, time.Minute).Backup(c.ctx, content)
	var p *dataprotection.Problem
	if !errors.As(err, &p) || p.Reason != dataprotection.ReasonBackupFailed ||
		!strings.Contains(p.Message, "PartiallyFailed") || !strings.Contains(p.Message, "volume snapshot of my-pvc failed") || !strings.Contains(p.Message, "2 errors") {
		t.Fatalf("err = %v, want a BackupFailed problem with Velero's reason", err)
	}
	if _, err := c.dc.Resource(gvrBackup).Namespace(c.ns).Get(c.ctx, "later", metav1.GetOptions{}); err == nil {
		t.Fatal("the wave after the failed backup was created")
	}
}

// TestWaitDeadline: a Backup that never finishes fails with a timeout
// reason, naming it and its last phase.
func TestWaitDeadline(t *testing.T) {
	c := newCluster(t)
	oadp := []events.ObjectRef{c.configMap("oadp", map[string]string{"a.yaml": "apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: stuck}\nspec: {}\n---\napiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: stuck}\nspec: {backupName: stuck}\n"})}
	c.velero.set("Backup", "stuck", outcome{Phase: "InProgress"})
	content, err := dataprotection.Validate(c.ctx, c.dc, oadp, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.runner(1, 2*time.Second).Backup(c.ctx, content)
	var p *dataprotection.Problem
	if !errors.As(err, &p) || p.Reason != dataprotection.ReasonTimedOut || !strings.Contains(p.Message, "stuck") || !strings.Contains(p.Message, "InProgress") {
		t.Fatalf("err = %v, want TimedOut naming the backup and its phase", err)
	}
}

// TestFailedRestore: a failed Restore fails the run with Velero's reason.
func TestFailedRestore(t *testing.T) {
	c := newCluster(t)
	oadp := []events.ObjectRef{c.configMap("oadp", map[string]string{"a.yaml": "apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: b}\nspec: {}\n---\napiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: r}\nspec: {backupName: b}\n"})}
	c.velero.set("Restore", "r", outcome{Phase: "Failed", FailureReason: "error restoring namespace"})
	content, err := dataprotection.Validate(c.ctx, c.dc, oadp, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := c.runner(1, time.Minute)
	if _, err := r.Backup(c.ctx, content); err != nil {
		t.Fatal(err)
	}
	_, err = r.Restore(c.ctx, content)
	var p *dataprotection.Problem
	if !errors.As(err, &p) || p.Reason != dataprotection.ReasonRestoreFailed || !strings.Contains(p.Message, "error restoring namespace") {
		t.Fatalf("err = %v, want RestoreFailed with Velero's reason", err)
	}
}

// TestStaleBackupReplaced: a same-named Backup of this cluster from an
// earlier run is replaced; one of another cluster is a conflict; one of
// this very run is kept (a redelivered task).
func TestStaleBackupReplaced(t *testing.T) {
	c := newCluster(t)
	oadp := []events.ObjectRef{c.configMap("oadp", map[string]string{"a.yaml": "apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: b}\nspec: {}\n---\napiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: r}\nspec: {backupName: b}\n"})}
	content, err := dataprotection.Validate(c.ctx, c.dc, oadp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.runner(1, time.Minute).Backup(c.ctx, content); err != nil {
		t.Fatal(err)
	}
	first, _ := c.dc.Resource(gvrBackup).Namespace(c.ns).Get(c.ctx, "b", metav1.GetOptions{})
	if _, err := c.runner(1, time.Minute).Backup(c.ctx, content); err != nil {
		t.Fatal(err)
	}
	same, _ := c.dc.Resource(gvrBackup).Namespace(c.ns).Get(c.ctx, "b", metav1.GetOptions{})
	if same.GetUID() != first.GetUID() {
		t.Fatal("a Backup of the same run was recreated")
	}
	if _, err := c.runner(2, time.Minute).Backup(c.ctx, content); err != nil {
		t.Fatal(err)
	}
	next, _ := c.dc.Resource(gvrBackup).Namespace(c.ns).Get(c.ctx, "b", metav1.GetOptions{})
	if next.GetUID() == first.GetUID() || next.GetLabels()[dataprotection.LabelGeneration] != "2" {
		t.Fatal("the stale Backup of generation 1 was not replaced")
	}
	other := &dataprotection.Runner{Client: c.dc, ClusterID: "sno-2", Generation: 3, WaitTimeout: time.Minute}
	_, err = other.Backup(c.ctx, content)
	var p *dataprotection.Problem
	if !errors.As(err, &p) || p.Reason != dataprotection.ReasonNameConflict || !strings.Contains(p.Message, "sno-1") {
		t.Fatalf("err = %v, want BackupNameConflict naming the owner", err)
	}
}
