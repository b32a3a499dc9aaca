package dataprotection

import (
	"context"
	"fmt"
	"sort"
	"strings"

	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/events"
)

// Validate checks, before anything changes on the cluster, that the OADP
// content can be backed up and restored: the ConfigMaps exist and hold only
// Backups and Restores, each passes a server-side dry-run create, every
// Restore names a Backup of the set, there are as many Backups as Restores
// and more than none, and Velero (and OADP, where installed) is ready. The
// extra manifests are checked too: they are applied only after the pivot,
// when a refusal costs a rollback. The first failure is returned as a
// *Problem.
func Validate(ctx context.Context, dc dynamic.Interface, oadp, extra []events.ObjectRef) (*Content, error) {
	var c *Content
	if len(oadp) > 0 {
		var err error
		if c, err = LoadContent(ctx, dc, oadp); err != nil {
			return nil, err
		}
		if err := checkPairs(c); err != nil {
			return nil, err
		}
		if err := CheckVelero(ctx, dc, namespaces(c)); err != nil {
			return nil, err
		}
		for _, o := range c.Raw {
			if err := dryRunCreate(ctx, dc, o); err != nil {
				return nil, err
			}
		}
	}
	if len(extra) > 0 {
		objs, err := readConfigMaps(ctx, dc, extra)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if err := allowedManifest(o); err != nil {
				return nil, err
			}
			if _, err := Wave(o); err != nil {
				return nil, err
			}
			if _, err := applyType(o); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func checkPairs(c *Content) error {
	backups := map[string]bool{}
	for _, b := range c.Backups {
		if _, err := Wave(b); err != nil {
			return err
		}
		backups[b.Name] = true
	}
	for _, r := range c.Restores {
		if _, err := Wave(r); err != nil {
			return err
		}
		if r.Spec.BackupName == "" {
			return problem(ReasonMissingBackup, "Restore %s names no backup (spec.backupName is empty)", r.Name)
		}
		if !backups[r.Spec.BackupName] {
			return problem(ReasonMissingBackup, "Restore %s restores backup %s, which is not among the Backups of the OADP content", r.Name, r.Spec.BackupName)
		}
	}
	if len(c.Backups) == 0 || len(c.Backups) != len(c.Restores) {
		return problem(ReasonBackupRestoreMismatch, "the OADP content has %d Backups and %d Restores; it needs as many of each, at least one", len(c.Backups), len(c.Restores))
	}
	return nil
}

// namespaces are where the content's Velero objects live (OADP's
// openshift-adp as a rule).
func namespaces(c *Content) []string {
	seen := map[string]bool{}
	for _, o := range c.Raw {
		seen[o.GetNamespace()] = true
	}
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}

func dryRunCreate(ctx context.Context, dc dynamic.Interface, o *unstructured.Unstructured) error {
	gvr := gvrBackup
	if o.GetKind() == "Restore" {
		gvr = gvrRestore
	}
	obj := o.DeepCopy()
	obj.SetResourceVersion("")
	// Strict: a misspelt field (includedNamespace) is an error, not
	// silently dropped as the typed structs would.
	_, err := dc.Resource(gvr).Namespace(o.GetNamespace()).Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	if err == nil || apierrors.IsAlreadyExists(err) {
		// An existing object of that name is a stale one of an earlier
		// run: Backup replaces it, so it is no reason to refuse.
		return nil
	}
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return problem(ReasonDryRunFailed, "%s %s/%s: the API server refuses it: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	return fmt.Errorf("dry-run create %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
}

// CheckVelero checks the data-protection install in the given namespaces:
// Velero's Backup, Restore and BackupStorageLocation CRDs exist; where the
// OADP operator is installed (its DataProtectionApplication CRD exists)
// each namespace has exactly one DPA, and it is reconciled; each namespace
// has a BackupStorageLocation, and all of them are Available.
func CheckVelero(ctx context.Context, dc dynamic.Interface, nss []string) error {
	for _, crd := range []string{"backups.velero.io", "restores.velero.io", "backupstoragelocations.velero.io"} {
		if _, err := dc.Resource(gvrCRD).Get(ctx, crd, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return problem(ReasonVeleroNotInstalled, "the CRD %s is missing: install OADP (or Velero)", crd)
		} else if err != nil {
			return fmt.Errorf("read CRD %s: %w", crd, err)
		}
	}
	_, err := dc.Resource(gvrCRD).Get(ctx, "dataprotectionapplications.oadp.openshift.io", metav1.GetOptions{})
	oadp := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read the DataProtectionApplication CRD: %w", err)
	}
	for _, ns := range nss {
		if oadp {
			list, err := dc.Resource(gvrDPA).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("list DataProtectionApplications in %s: %w", ns, err)
			}
			if n := len(list.Items); n != 1 {
				return problem(ReasonDPA, "namespace %s has %d DataProtectionApplications; OADP needs exactly one", ns, n)
			}
			if !conditionTrue(&list.Items[0], "Reconciled") {
				return problem(ReasonDPA, "DataProtectionApplication %s/%s is not Reconciled", ns, list.Items[0].GetName())
			}
		}
		list, err := dc.Resource(gvrBSL).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list BackupStorageLocations in %s: %w", ns, err)
		}
		if len(list.Items) == 0 {
			return problem(ReasonStorageUnavailable, "namespace %s has no BackupStorageLocation", ns)
		}
		var bad []string
		for _, l := range list.Items {
			if phase, _, _ := unstructured.NestedString(l.Object, "status", "phase"); phase != string(velerov1.BackupStorageLocationPhaseAvailable) {
				bad = append(bad, fmt.Sprintf("%s (phase %q)", l.GetName(), phase))
			}
		}
		if len(bad) > 0 {
			return problem(ReasonStorageUnavailable, "BackupStorageLocations in %s not Available: %s", ns, strings.Join(bad, ", "))
		}
	}
	return nil
}

func conditionTrue(o *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			return m["status"] == "True"
		}
	}
	return false
}
