package dataprotection

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/events"
)

// Apply types of an extra manifest that already exists on the cluster.
const (
	ApplyReplace = "replace" // the default: a full update to the manifest
	ApplyMerge   = "merge"   // a JSON merge patch with the manifest
)

// disallowed kinds of extra manifests: they would change the node or the
// operators underneath the upgrade.
var disallowed = map[string]bool{"MachineConfig": true, "ClusterServiceVersion": true, "InstallPlan": true, "Subscription": true}

func allowedManifest(o *unstructured.Unstructured) error {
	if disallowed[o.GetKind()] {
		return problem(ReasonDisallowedManifest, "extra manifest %s %s is not allowed: ibu refuses MachineConfig, ClusterServiceVersion, InstallPlan and Subscription", o.GetKind(), o.GetName())
	}
	if o.GetName() == "" {
		return problem(ReasonInvalidManifest, "an extra manifest of kind %s has no name", o.GetKind())
	}
	return nil
}

func applyType(o metav1.Object) (string, error) {
	a := o.GetAnnotations()
	v, ok := a[AnnotationApplyType]
	if !ok {
		v = a[LCAAnnotationApplyType]
	}
	switch v {
	case "", ApplyReplace:
		return ApplyReplace, nil
	case ApplyMerge:
		return ApplyMerge, nil
	}
	return "", problem(ReasonInvalidManifest, "%s: apply-type %q is neither %s nor %s", o.GetName(), v, ApplyReplace, ApplyMerge)
}

// ApplyExtraManifests applies the manifests of the ConfigMaps in
// apply-wave order: an absent object is created; a present one is replaced
// or merged as its apply-type annotation says. It returns how many it
// applied.
func ApplyExtraManifests(ctx context.Context, dc dynamic.Interface, mapper meta.RESTMapper, refs []events.ObjectRef) (int, error) {
	if len(refs) == 0 {
		return 0, nil
	}
	objs, err := readConfigMaps(ctx, dc, refs)
	if err != nil {
		return 0, err
	}
	for _, o := range objs {
		if err := allowedManifest(o); err != nil {
			return 0, err
		}
	}
	waves, err := Waves(objs)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, wave := range waves {
		for _, o := range wave {
			if err := applyOne(ctx, dc, mapper, o); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func applyOne(ctx context.Context, dc dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	what := fmt.Sprintf("%s %s", gvk.Kind, o.GetName())
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return problem(ReasonExtraManifestFailed, "%s: the cluster does not serve %s: %v", what, gvk, err)
	}
	var res dynamic.ResourceInterface = dc.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		// readConfigMaps gave a namespace-less object its ConfigMap's.
		res = dc.Resource(m.Resource).Namespace(o.GetNamespace())
		what = fmt.Sprintf("%s %s/%s", gvk.Kind, o.GetNamespace(), o.GetName())
	} else {
		o.SetNamespace("")
	}
	typ, err := applyType(o)
	if err != nil {
		return err
	}
	old, err := res.Get(ctx, o.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = res.Create(ctx, o, metav1.CreateOptions{})
	case err != nil:
	case typ == ApplyMerge:
		var patch []byte
		if patch, err = json.Marshal(o.Object); err == nil {
			_, err = res.Patch(ctx, o.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
		}
	default:
		obj := o.DeepCopy()
		obj.SetResourceVersion(old.GetResourceVersion())
		_, err = res.Update(ctx, obj, metav1.UpdateOptions{})
	}
	if err != nil {
		return problem(ReasonExtraManifestFailed, "apply %s: %v", what, err)
	}
	return nil
}
