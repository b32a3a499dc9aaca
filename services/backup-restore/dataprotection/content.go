package dataprotection

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/events"
	"ibu.dev/shared/manifest"
)

// Annotations read on OADP objects and extra manifests. Lifecycle Agent's
// names are accepted too, so existing OADP ConfigMaps work unchanged; the
// ibu name wins when both are set.
const (
	AnnotationApplyWave    = "ibu.dev/apply-wave"
	AnnotationApplyType    = "ibu.dev/apply-type"
	LCAAnnotationApplyWave = "lca.openshift.io/apply-wave"
	LCAAnnotationApplyType = "lca.openshift.io/apply-type"
)

// Labels put on the Backups and Restores the service creates.
const (
	LabelCluster    = "ibu.dev/cluster"
	LabelGeneration = "ibu.dev/generation"
)

// LastWave is the wave of an object without an apply-wave annotation.
const LastWave = math.MaxInt32

var (
	gvrConfigMap = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrBackup    = velerov1.SchemeGroupVersion.WithResource("backups")
	gvrRestore   = velerov1.SchemeGroupVersion.WithResource("restores")
	gvrBSL       = velerov1.SchemeGroupVersion.WithResource("backupstoragelocations")
	gvrCRD       = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	gvrDPA       = schema.GroupVersionResource{Group: "oadp.openshift.io", Version: "v1alpha1", Resource: "dataprotectionapplications"}
)

// Content is what the OADP ConfigMaps of a plan hold.
type Content struct {
	Backups  []*velerov1.Backup
	Restores []*velerov1.Restore
	// Raw keeps each object as written, for the server-side dry run.
	Raw []*unstructured.Unstructured
}

// Problem is a reason the OADP content or the cluster cannot be used.
type Problem struct {
	Reason  string // CamelCase, e.g. ConfigMapNotFound
	Message string
}

func (p *Problem) Error() string { return p.Reason + ": " + p.Message }

func problem(reason, format string, args ...any) *Problem {
	return &Problem{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Reasons of a Problem.
const (
	ReasonConfigMapNotFound     = "ConfigMapNotFound"
	ReasonInvalidContent        = "InvalidOADPContent"
	ReasonUnexpectedObject      = "UnexpectedObject"
	ReasonDryRunFailed          = "DryRunFailed"
	ReasonMissingBackup         = "MissingBackup"
	ReasonBackupRestoreMismatch = "BackupRestoreMismatch"
	ReasonVeleroNotInstalled    = "VeleroNotInstalled"
	ReasonDPA                   = "DataProtectionApplicationNotReady"
	ReasonStorageUnavailable    = "BackupStorageLocationUnavailable"
	ReasonDisallowedManifest    = "DisallowedExtraManifest"
	ReasonInvalidManifest       = "InvalidExtraManifest"
	ReasonNameConflict          = "BackupNameConflict"
	ReasonBackupFailed          = "BackupFailed"
	ReasonRestoreFailed         = "RestoreFailed"
	ReasonTimedOut              = "TimedOut"
	ReasonExtraManifestFailed   = "ExtraManifestFailed"
	ReasonClusterUnreachable    = "ClusterUnreachable"
)

// readConfigMaps returns the objects in every data value of the ConfigMaps,
// in ConfigMap order, then key order.
func readConfigMaps(ctx context.Context, dc dynamic.Interface, refs []events.ObjectRef) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, ref := range refs {
		cm, err := dc.Resource(gvrConfigMap).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, problem(ReasonConfigMapNotFound, "ConfigMap %s/%s does not exist", ref.Namespace, ref.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("read ConfigMap %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			objs, err := manifest.Decode([]byte(data[k]))
			if err != nil {
				return nil, problem(ReasonInvalidContent, "ConfigMap %s/%s key %s: %v", ref.Namespace, ref.Name, k, err)
			}
			for _, o := range objs {
				if o.GetNamespace() == "" {
					o.SetNamespace(ref.Namespace)
				}
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

// LoadContent reads the OADP ConfigMaps and checks that every object is a
// velero.io/v1 Backup or Restore.
func LoadContent(ctx context.Context, dc dynamic.Interface, refs []events.ObjectRef) (*Content, error) {
	objs, err := readConfigMaps(ctx, dc, refs)
	if err != nil {
		return nil, err
	}
	c := &Content{Raw: objs}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.GroupVersion() != velerov1.SchemeGroupVersion || (gvk.Kind != "Backup" && gvk.Kind != "Restore") {
			return nil, problem(ReasonUnexpectedObject, "%s %s/%s is neither a velero.io/v1 Backup nor a Restore", describeGVK(gvk), o.GetNamespace(), o.GetName())
		}
		if o.GetName() == "" {
			return nil, problem(ReasonInvalidContent, "a %s has no name", gvk.Kind)
		}
		var target any
		if gvk.Kind == "Backup" {
			b := &velerov1.Backup{}
			c.Backups, target = append(c.Backups, b), b
		} else {
			r := &velerov1.Restore{}
			c.Restores, target = append(c.Restores, r), r
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, target); err != nil {
			return nil, problem(ReasonInvalidContent, "%s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
	return c, nil
}

func describeGVK(gvk schema.GroupVersionKind) string {
	if gvk.Kind == "" {
		return "an object without kind"
	}
	return gvk.Kind + " " + gvk.GroupVersion().String()
}

// Wave is the apply-wave of an object: the annotation as an integer,
// LastWave when missing.
func Wave(o metav1.Object) (int, error) {
	a := o.GetAnnotations()
	v, ok := a[AnnotationApplyWave]
	if !ok {
		v, ok = a[LCAAnnotationApplyWave]
	}
	if !ok {
		return LastWave, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, problem(ReasonInvalidContent, "%s: apply-wave %q is not a non-negative integer", o.GetName(), v)
	}
	return n, nil
}

// Waves groups objects by apply-wave, in ascending numeric order (wave 10
// after wave 2), names sorted within a wave.
func Waves[T metav1.Object](objs []T) ([][]T, error) {
	type item struct {
		wave int
		obj  T
	}
	items := make([]item, 0, len(objs))
	for _, o := range objs {
		w, err := Wave(o)
		if err != nil {
			return nil, err
		}
		items = append(items, item{w, o})
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].wave != items[j].wave {
			return items[i].wave < items[j].wave
		}
		return items[i].obj.GetName() < items[j].obj.GetName()
	})
	var out [][]T
	for i, it := range items {
		if i == 0 || it.wave != items[i-1].wave {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], it.obj)
	}
	return out, nil
}
