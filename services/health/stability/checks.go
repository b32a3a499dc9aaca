package stability

import (
	"context"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/events"
)

// The checks, by name. Each reads one or two resource types with one LIST
// each, never one GET per object.
const (
	CheckClusterOperators   = "ClusterOperators"
	CheckMachineConfigPools = "MachineConfigPools"
	CheckSriov              = "SriovNetworkNodeStates"
	CheckDataProtection     = "DataProtection"
	CheckNode               = "Node"
	CheckCSVs               = "ClusterServiceVersions"
	CheckCSRs               = "CertificateSigningRequests"
)

// Reasons of a failed check.
const (
	ReasonOperatorDegraded    = "OperatorDegraded"
	ReasonOperatorUnavailable = "OperatorUnavailable"
	ReasonOperatorProgressing = "OperatorProgressing"
	ReasonPoolNotReady        = "MachineConfigPoolNotReady"
	ReasonSriovNotSynced      = "SriovNotSynced"
	ReasonDPANotReconciled    = "DataProtectionApplicationNotReconciled"
	ReasonStorageUnavailable  = "BackupStorageLocationUnavailable"
	ReasonNodeNotReady        = "NodeNotReady"
	ReasonCSVNotSucceeded     = "CSVNotSucceeded"
	ReasonPendingCSR          = "PendingCSR"
	ReasonAPIError            = "APIError"
)

var (
	gvrClusterOperators = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "clusteroperators"}
	gvrMCPs             = schema.GroupVersionResource{Group: "machineconfiguration.openshift.io", Version: "v1", Resource: "machineconfigpools"}
	gvrSriovStates      = schema.GroupVersionResource{Group: "sriovnetwork.openshift.io", Version: "v1", Resource: "sriovnetworknodestates"}
	gvrDPAs             = schema.GroupVersionResource{Group: "oadp.openshift.io", Version: "v1alpha1", Resource: "dataprotectionapplications"}
	gvrBSLs             = schema.GroupVersionResource{Group: "velero.io", Version: "v1", Resource: "backupstoragelocations"}
	gvrNodes            = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	gvrCSVs             = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "clusterserviceversions"}
	gvrCSRs             = schema.GroupVersionResource{Group: "certificates.k8s.io", Version: "v1", Resource: "certificatesigningrequests"}
)

// check is one named check of a tier.
type check struct {
	name string
	tier events.HealthTier
	run  func(ctx context.Context, dc dynamic.Interface) result
}

// result is a check's outcome before it gets its name and tier.
type result struct {
	passed  bool
	reason  string
	message string
}

func pass(format string, args ...any) result {
	return result{passed: true, message: fmt.Sprintf(format, args...)}
}

// allChecks in the order they run and are reported: the mandatory tier
// first.
var allChecks = []check{
	{CheckClusterOperators, events.TierMandatory, checkClusterOperators},
	{CheckMachineConfigPools, events.TierMandatory, checkMCPs},
	{CheckSriov, events.TierMandatory, checkSriov},
	{CheckDataProtection, events.TierMandatory, checkDataProtection},
	{CheckNode, events.TierDeferred, checkNodes},
	{CheckCSVs, events.TierDeferred, checkCSVs},
	{CheckCSRs, events.TierDeferred, checkCSRs},
}

// Names lists every check's name.
func Names() []string {
	out := make([]string, len(allChecks))
	for i, c := range allChecks {
		out[i] = c.name
	}
	return out
}

// list lists a resource type across namespaces. served is false when the
// cluster does not serve the type (its CRD is not installed).
func list(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource) (items []unstructured.Unstructured, served bool, err error) {
	l, err := dc.Resource(gvr).List(ctx, metav1.ListOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
	}
	return l.Items, true, nil
}

func apiError(err error) result { return result{reason: ReasonAPIError, message: err.Error()} }

// condition returns the status of a condition ("" when absent), with its
// reason and message.
func condition(o *unstructured.Unstructured, typ string) (status, reason, message string) {
	conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			return s, r, msg
		}
	}
	return "", "", ""
}

// culprits joins the failing objects' descriptions, at most 20 of them.
func culprits(bad []string) string {
	sort.Strings(bad)
	if len(bad) > 20 {
		return strings.Join(bad[:20], "; ") + fmt.Sprintf("; and %d more", len(bad)-20)
	}
	return strings.Join(bad, "; ")
}

func because(r, m string) string {
	switch {
	case r != "" && m != "":
		return " (" + r + ": " + m + ")"
	case r != "" || m != "":
		return " (" + r + m + ")"
	}
	return ""
}

func checkClusterOperators(ctx context.Context, dc dynamic.Interface) result {
	items, served, err := list(ctx, dc, gvrClusterOperators)
	if err != nil {
		return apiError(err)
	}
	if !served {
		return pass("ClusterOperators not served: not an OpenShift cluster")
	}
	var bad []string
	reason := ""
	worse := func(r string) {
		rank := map[string]int{"": 0, ReasonOperatorProgressing: 1, ReasonOperatorUnavailable: 2, ReasonOperatorDegraded: 3}
		if rank[r] > rank[reason] {
			reason = r
		}
	}
	for i := range items {
		co := &items[i]
		var why []string
		if s, r, m := condition(co, "Degraded"); s == "True" {
			why = append(why, "Degraded"+because(r, m))
			worse(ReasonOperatorDegraded)
		}
		if s, r, m := condition(co, "Available"); s != "True" {
			why = append(why, "not Available"+because(r, m))
			worse(ReasonOperatorUnavailable)
		}
		if s, r, m := condition(co, "Progressing"); s == "True" {
			why = append(why, "Progressing"+because(r, m))
			worse(ReasonOperatorProgressing)
		}
		if len(why) > 0 {
			bad = append(bad, "ClusterOperator "+co.GetName()+" "+strings.Join(why, ", "))
		}
	}
	if len(bad) > 0 {
		return result{reason: reason, message: culprits(bad)}
	}
	return pass("%d ClusterOperators available", len(items))
}

func checkMCPs(ctx context.Context, dc dynamic.Interface) result {
	items, served, err := list(ctx, dc, gvrMCPs)
	if err != nil {
		return apiError(err)
	}
	if !served {
		return pass("MachineConfigPools not served: not an OpenShift cluster")
	}
	var bad []string
	for i := range items {
		st := func(f string) int64 { n, _, _ := unstructured.NestedInt64(items[i].Object, "status", f); return n }
		total, ready, updated, degraded := st("machineCount"), st("readyMachineCount"), st("updatedMachineCount"), st("degradedMachineCount")
		if ready != total || updated != total || degraded != 0 {
			bad = append(bad, fmt.Sprintf("MachineConfigPool %s %d/%d ready, %d/%d updated, %d degraded", items[i].GetName(), ready, total, updated, total, degraded))
		}
	}
	if len(bad) > 0 {
		return result{reason: ReasonPoolNotReady, message: culprits(bad)}
	}
	return pass("%d MachineConfigPools ready", len(items))
}

func checkSriov(ctx context.Context, dc dynamic.Interface) result {
	items, served, err := list(ctx, dc, gvrSriovStates)
	if err != nil {
		return apiError(err)
	}
	if !served {
		return pass("SR-IOV operator not installed")
	}
	if len(items) == 0 {
		return result{reason: ReasonSriovNotSynced, message: "no SriovNetworkNodeState yet"}
	}
	var bad []string
	for i := range items {
		if s, _, _ := unstructured.NestedString(items[i].Object, "status", "syncStatus"); s != "Succeeded" {
			bad = append(bad, fmt.Sprintf("SriovNetworkNodeState %s/%s syncStatus %q", items[i].GetNamespace(), items[i].GetName(), s))
		}
	}
	if len(bad) > 0 {
		return result{reason: ReasonSriovNotSynced, message: culprits(bad)}
	}
	return pass("%d SR-IOV node states synced", len(items))
}

func checkDataProtection(ctx context.Context, dc dynamic.Interface) result {
	dpas, dpaServed, err := list(ctx, dc, gvrDPAs)
	if err != nil {
		return apiError(err)
	}
	var bad []string
	for i := range dpas {
		if s, r, m := condition(&dpas[i], "Reconciled"); s != "True" {
			bad = append(bad, fmt.Sprintf("DataProtectionApplication %s/%s not Reconciled%s", dpas[i].GetNamespace(), dpas[i].GetName(), because(r, m)))
		}
	}
	if len(bad) > 0 {
		return result{reason: ReasonDPANotReconciled, message: culprits(bad)}
	}
	bsls, bslServed, err := list(ctx, dc, gvrBSLs)
	if err != nil {
		return apiError(err)
	}
	if !dpaServed && !bslServed {
		return pass("OADP and Velero not installed")
	}
	if len(dpas) > 0 && len(bsls) == 0 {
		return result{reason: ReasonStorageUnavailable, message: "a DataProtectionApplication is reconciled but there is no BackupStorageLocation"}
	}
	for i := range bsls {
		if p, _, _ := unstructured.NestedString(bsls[i].Object, "status", "phase"); p != "Available" {
			bad = append(bad, fmt.Sprintf("BackupStorageLocation %s/%s phase %q", bsls[i].GetNamespace(), bsls[i].GetName(), p))
		}
	}
	if len(bad) > 0 {
		return result{reason: ReasonStorageUnavailable, message: culprits(bad)}
	}
	return pass("%d DataProtectionApplications reconciled, %d BackupStorageLocations available", len(dpas), len(bsls))
}

func checkNodes(ctx context.Context, dc dynamic.Interface) result {
	items, _, err := list(ctx, dc, gvrNodes)
	if err != nil {
		return apiError(err)
	}
	if len(items) == 0 {
		return result{reason: ReasonNodeNotReady, message: "the cluster has no Node"}
	}
	var bad []string
	for i := range items {
		if s, r, m := condition(&items[i], "Ready"); s != "True" {
			bad = append(bad, "Node "+items[i].GetName()+" not Ready"+because(r, m))
		}
		if s, r, m := condition(&items[i], "NetworkUnavailable"); s == "True" {
			bad = append(bad, "Node "+items[i].GetName()+" NetworkUnavailable"+because(r, m))
		}
	}
	if len(bad) > 0 {
		return result{reason: ReasonNodeNotReady, message: culprits(bad)}
	}
	return pass("%d nodes Ready", len(items))
}

func checkCSVs(ctx context.Context, dc dynamic.Interface) result {
	items, served, err := list(ctx, dc, gvrCSVs)
	if err != nil {
		return apiError(err)
	}
	if !served {
		return pass("OLM not installed")
	}
	var bad []string
	for i := range items {
		if p, _, _ := unstructured.NestedString(items[i].Object, "status", "phase"); p != "Succeeded" {
			bad = append(bad, fmt.Sprintf("ClusterServiceVersion %s/%s phase %q", items[i].GetNamespace(), items[i].GetName(), p))
		}
	}
	if len(bad) > 0 {
		return result{reason: ReasonCSVNotSucceeded, message: culprits(bad)}
	}
	return pass("%d ClusterServiceVersions Succeeded", len(items))
}

func checkCSRs(ctx context.Context, dc dynamic.Interface) result {
	items, _, err := list(ctx, dc, gvrCSRs)
	if err != nil {
		return apiError(err)
	}
	var bad []string
	for i := range items {
		a, _, _ := condition(&items[i], "Approved")
		d, _, _ := condition(&items[i], "Denied")
		if a != "True" && d != "True" {
			bad = append(bad, "CertificateSigningRequest "+items[i].GetName()+" pending")
		}
	}
	if len(bad) > 0 {
		return result{reason: ReasonPendingCSR, message: culprits(bad)}
	}
	return pass("no pending CertificateSigningRequest")
}
