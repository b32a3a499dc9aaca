package dataprotection

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	velerov1 "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"ibu.dev/shared/events"
)

// DefaultWaitTimeout bounds each wait for a Backup or Restore.
const DefaultWaitTimeout = 30 * time.Minute

// Runner creates one cluster's Backups and Restores and waits for them.
type Runner struct {
	Client     dynamic.Interface
	ClusterID  string
	Generation int64
	// WaitTimeout bounds each wait for a Velero object (default
	// DefaultWaitTimeout).
	WaitTimeout time.Duration
	Logger      *slog.Logger
}

func (r *Runner) timeout() time.Duration {
	if r.WaitTimeout > 0 {
		return r.WaitTimeout
	}
	return DefaultWaitTimeout
}

func (r *Runner) log() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Backup creates the content's Backups wave by wave, each wave only after
// every Backup of the one before completed, and returns them with their
// final phases. A Backup that ends in any phase but Completed stops it with
// a BackupFailed *Problem carrying Velero's reason.
func (r *Runner) Backup(ctx context.Context, c *Content) ([]events.VeleroObject, error) {
	waves, err := Waves(c.Backups)
	if err != nil {
		return nil, err
	}
	var done []events.VeleroObject
	for _, wave := range waves {
		for _, b := range wave {
			obj, err := toUnstructured(b, "Backup")
			if err != nil {
				return done, err
			}
			if err := r.ensure(ctx, gvrBackup, obj); err != nil {
				return done, err
			}
		}
		for _, b := range wave {
			res, err := r.finish(ctx, gvrBackup, "Backup", b.Namespace, b.Name)
			if err != nil {
				return done, err
			}
			w, _ := Wave(b)
			done = append(done, events.VeleroObject{Name: b.Name, Wave: w, Phase: res})
		}
	}
	return done, nil
}

// Restore creates the content's Restores wave by wave, after the Backup
// each one restores is present (Velero syncs Backups back from object
// storage after the pivot), and waits for each.
func (r *Runner) Restore(ctx context.Context, c *Content) ([]events.VeleroObject, error) {
	waves, err := Waves(c.Restores)
	if err != nil {
		return nil, err
	}
	var done []events.VeleroObject
	for _, wave := range waves {
		for _, rs := range wave {
			if err := r.waitBackupPresent(ctx, rs); err != nil {
				return done, err
			}
			obj, err := toUnstructured(rs, "Restore")
			if err != nil {
				return done, err
			}
			if err := r.ensure(ctx, gvrRestore, obj); err != nil {
				return done, err
			}
		}
		for _, rs := range wave {
			res, err := r.finish(ctx, gvrRestore, "Restore", rs.Namespace, rs.Name)
			if err != nil {
				return done, err
			}
			w, _ := Wave(rs)
			done = append(done, events.VeleroObject{Name: rs.Name, Wave: w, Phase: res})
		}
	}
	return done, nil
}

func (r *Runner) waitBackupPresent(ctx context.Context, rs *velerov1.Restore) error {
	res := r.Client.Resource(gvrBackup).Namespace(rs.Namespace)
	wctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	_, err := waitObject(wctx, res, rs.Spec.BackupName, func(o *unstructured.Unstructured) bool { return o != nil })
	if err == errWaitTimedOut && ctx.Err() == nil {
		return problem(ReasonMissingBackup, "Restore %s: Backup %s/%s did not appear within %s", rs.Name, rs.Namespace, rs.Spec.BackupName, r.timeout())
	}
	return err
}

// ensure creates obj labelled with the cluster and generation. An object
// of that name from this very run (a redelivered task, a restarted
// service) is kept and waited for again; a stale one of this cluster from
// an earlier run is replaced; one that belongs to another cluster, or to
// nobody, is a conflict.
func (r *Runner) ensure(ctx context.Context, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) error {
	gen := strconv.FormatInt(r.Generation, 10)
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelCluster] = r.ClusterID
	labels[LabelGeneration] = gen
	obj.SetLabels(labels)
	obj.SetResourceVersion("")
	unstructured.RemoveNestedField(obj.Object, "status")
	res := r.Client.Resource(gvr).Namespace(obj.GetNamespace())
	for range 3 {
		old, err := res.Get(ctx, obj.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err := res.Create(ctx, obj, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue // created meanwhile: look again
			}
			if err != nil {
				return problem(reasonFor(obj.GetKind()), "create %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
			}
			r.log().Info("created", "kind", obj.GetKind(), "name", obj.GetName(), "cluster", r.ClusterID)
			return nil
		case err != nil:
			return fmt.Errorf("read %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		ol := old.GetLabels()
		if ol[LabelCluster] != r.ClusterID {
			owner := ol[LabelCluster]
			if owner == "" {
				owner = "no ibu cluster"
			}
			return problem(ReasonNameConflict, "%s %s/%s already exists and belongs to %s", obj.GetKind(), obj.GetNamespace(), obj.GetName(), owner)
		}
		if ol[LabelGeneration] == gen {
			return nil
		}
		r.log().Info("replacing a stale object of an earlier run", "kind", obj.GetKind(), "name", obj.GetName(), "generation", ol[LabelGeneration])
		uid := old.GetUID()
		if err := res.Delete(ctx, obj.GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete stale %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		wctx, cancel := context.WithTimeout(ctx, r.timeout())
		_, err = waitObject(wctx, res, obj.GetName(), func(o *unstructured.Unstructured) bool { return o == nil || o.GetUID() != uid })
		cancel()
		if err == errWaitTimedOut && ctx.Err() == nil {
			return problem(ReasonTimedOut, "stale %s %s/%s not gone within %s", obj.GetKind(), obj.GetNamespace(), obj.GetName(), r.timeout())
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("%s %s/%s keeps changing under ibu", obj.GetKind(), obj.GetNamespace(), obj.GetName())
}

// finish waits for a Velero object's final phase; anything but Completed
// is a failure with Velero's own words.
func (r *Runner) finish(ctx context.Context, gvr schema.GroupVersionResource, kind, ns, name string) (string, error) {
	obj, err := waitFinished(ctx, r.Client.Resource(gvr).Namespace(ns), kind, name, r.timeout())
	if err != nil {
		return "", err
	}
	p := phase(obj)
	if p == "Completed" {
		return p, nil
	}
	return p, problem(reasonFor(kind), "%s %s/%s ended %s%s", kind, ns, name, p, veleroWhy(obj))
}

// veleroWhy is what Velero said about a failed object.
func veleroWhy(o *unstructured.Unstructured) string {
	var parts []string
	if s, _, _ := unstructured.NestedString(o.Object, "status", "failureReason"); s != "" {
		parts = append(parts, s)
	}
	if v, _, _ := unstructured.NestedStringSlice(o.Object, "status", "validationErrors"); len(v) > 0 {
		parts = append(parts, "validation errors: "+strings.Join(v, "; "))
	}
	if n, _, _ := unstructured.NestedInt64(o.Object, "status", "errors"); n > 0 {
		parts = append(parts, fmt.Sprintf("%d errors", n))
	}
	if n, _, _ := unstructured.NestedInt64(o.Object, "status", "warnings"); n > 0 {
		parts = append(parts, fmt.Sprintf("%d warnings", n))
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, ", ")
}

func toUnstructured(obj runtime.Object, kind string) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", kind, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(velerov1.SchemeGroupVersion.String())
	u.SetKind(kind)
	// Fields the converter fills with zero values would trip the server's
	// own bookkeeping.
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}
