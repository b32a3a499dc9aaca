package dataprotection_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	veleroCRDs "github.com/vmware-tanzu/velero/config/crd/v1/crds"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"ibu.dev/services/backup-restore/dataprotection"
	"ibu.dev/shared/events"
	"ibu.dev/shared/testkit/kubetest"
)

const pair = `apiVersion: velero.io/v1
kind: Backup
metadata: {name: apps}
spec: {includedNamespaces: [apps]}
---
apiVersion: velero.io/v1
kind: Restore
metadata: {name: apps}
spec: {backupName: apps}
`

// TestValidationFailures: each way the OADP content, the extra manifests
// or the cluster's data-protection install can be wrong is refused with
// its own reason, before anything is created.
func TestValidationFailures(t *testing.T) {
	tests := []struct {
		name   string
		oadp   map[string]string // nil: no OADP ConfigMap; "missing": refer to one that does not exist
		extra  map[string]string
		setup  func(c *cluster)
		reason string
		says   string
	}{
		{name: "ConfigMap missing", reason: dataprotection.ReasonConfigMapNotFound, says: "does not exist"},
		{name: "not a Velero object", oadp: map[string]string{"a.yaml": pair + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"},
			reason: dataprotection.ReasonUnexpectedObject, says: "Secret v1"},
		{name: "not YAML", oadp: map[string]string{"a.yaml": "apiVersion: velero.io/v1\nkind: [Backup\n"},
			reason: dataprotection.ReasonInvalidContent, says: "a.yaml"},
		{name: "dry run refused", oadp: map[string]string{"a.yaml": pair + "---\napiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: bad}\nspec: {includedNamespace: [apps]}\n---\napiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: bad}\nspec: {backupName: bad}\n"},
			reason: dataprotection.ReasonDryRunFailed, says: "includedNamespace"},
		{name: "restore of an unknown backup", oadp: map[string]string{"a.yaml": pair + "---\napiVersion: velero.io/v1\nkind: Restore\nmetadata: {name: other}\nspec: {backupName: nope}\n---\napiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: extra}\nspec: {}\n"},
			reason: dataprotection.ReasonMissingBackup, says: "nope"},
		{name: "more backups than restores", oadp: map[string]string{"a.yaml": pair + "---\napiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: lonely}\nspec: {}\n"},
			reason: dataprotection.ReasonBackupRestoreMismatch, says: "2 Backups and 1 Restores"},
		{name: "empty content", oadp: map[string]string{"a.yaml": "# nothing\n"},
			reason: dataprotection.ReasonBackupRestoreMismatch, says: "0 Backups"},
		{name: "bad apply-wave", oadp: map[string]string{"a.yaml": strings.Replace(pair, "metadata: {name: apps}", "metadata: {name: apps, annotations: {ibu.dev/apply-wave: soon}}", 1)},
			reason: dataprotection.ReasonInvalidContent, says: "soon"},
		{name: "no DPA", oadp: map[string]string{"a.yaml": pair},
			setup:  func(c *cluster) { c.delete(gvrDPA, "dpa") },
			reason: dataprotection.ReasonDPA, says: "0 DataProtectionApplications"},
		{name: "two DPAs", oadp: map[string]string{"a.yaml": pair},
			setup: func(c *cluster) {
				c.apply("apiVersion: oadp.openshift.io/v1alpha1\nkind: DataProtectionApplication\nmetadata: {name: second}\nspec: {}\n")
			},
			reason: dataprotection.ReasonDPA, says: "2 DataProtectionApplications"},
		{name: "DPA not reconciled", oadp: map[string]string{"a.yaml": pair},
			setup:  func(c *cluster) { c.setConditions(gvrDPA, "dpa", "Reconciled", "False") },
			reason: dataprotection.ReasonDPA, says: "not Reconciled"},
		{name: "storage location unavailable", oadp: map[string]string{"a.yaml": pair},
			setup: func(c *cluster) {
				c.apply("apiVersion: velero.io/v1\nkind: BackupStorageLocation\nmetadata: {name: second}\nspec: {provider: aws, objectStorage: {bucket: b}}\nstatus: {phase: Unavailable}\n")
			},
			reason: dataprotection.ReasonStorageUnavailable, says: "second"},
		{name: "no storage location", oadp: map[string]string{"a.yaml": pair},
			setup:  func(c *cluster) { c.delete(gvrBSL, "default") },
			reason: dataprotection.ReasonStorageUnavailable, says: "no BackupStorageLocation"},
		{name: "disallowed extra manifest", oadp: map[string]string{"a.yaml": pair},
			extra:  map[string]string{"sub.yaml": "apiVersion: operators.coreos.com/v1alpha1\nkind: Subscription\nmetadata: {name: sriov}\nspec: {}\n"},
			reason: dataprotection.ReasonDisallowedManifest, says: "Subscription"},
		{name: "bad apply-type", extra: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, annotations: {ibu.dev/apply-type: upsert}}\n"},
			reason: dataprotection.ReasonInvalidManifest, says: "upsert"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			if tc.setup != nil {
				tc.setup(c)
			}
			var oadp, extra []events.ObjectRef
			switch {
			case tc.oadp != nil:
				oadp = []events.ObjectRef{c.configMap("oadp", tc.oadp)}
			case tc.extra == nil:
				oadp = []events.ObjectRef{{Namespace: c.ns, Name: "missing"}}
			}
			if tc.extra != nil {
				extra = []events.ObjectRef{c.configMap("extra", tc.extra)}
			}
			_, err := dataprotection.Validate(c.ctx, c.dc, oadp, extra)
			var p *dataprotection.Problem
			if !errors.As(err, &p) || p.Reason != tc.reason || !strings.Contains(p.Message, tc.says) {
				t.Fatalf("err = %v, want %s saying %q", err, tc.reason, tc.says)
			}
			list, err := c.dc.Resource(gvrBackup).Namespace(c.ns).List(c.ctx, metav1.ListOptions{})
			if err != nil || len(list.Items) != 0 {
				t.Fatalf("validation created %d Backups (%v)", len(list.Items), err)
			}
		})
	}
}

// TestVeleroNotInstalled: a cluster without Velero's CRDs is refused (a
// server of its own: the package's has them).
func TestVeleroNotInstalled(t *testing.T) {
	bare := kubetest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dc, err := bare.Dynamic()
	if err != nil {
		t.Fatal(err)
	}
	// Only the Backup CRD: the Restore and storage-location ones are missing.
	for _, crd := range veleroCRDs.CRDs {
		if crd.Name == "backups.velero.io" {
			b, _ := json.Marshal(crd)
			if err := bare.InstallCRDs(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = dataprotection.CheckVelero(ctx, dc, []string{"openshift-adp"})
	var p *dataprotection.Problem
	if !errors.As(err, &p) || p.Reason != dataprotection.ReasonVeleroNotInstalled || !strings.Contains(p.Message, "restores.velero.io") {
		t.Fatalf("err = %v, want VeleroNotInstalled naming restores.velero.io", err)
	}
}
