package dataprotection

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// errWaitTimedOut: the condition did not hold before the deadline.
var errWaitTimedOut = errors.New("timed out")

// waitObject watches one object by name until done(obj) holds, obj being
// nil while the object does not exist; it returns the object that
// satisfied it. It lists once, then follows a watch from that version, so
// it reacts to each change instead of polling. ctx's deadline is the wait's.
func waitObject(ctx context.Context, res dynamic.ResourceInterface, name string, done func(*unstructured.Unstructured) bool) (*unstructured.Unstructured, error) {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	var last *unstructured.Unstructured
	for {
		list, err := res.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			if ctx.Err() != nil {
				return last, errWaitTimedOut
			}
			return nil, fmt.Errorf("list %s: %w", name, err)
		}
		last = nil
		if len(list.Items) > 0 {
			last = &list.Items[0]
		}
		if done(last) {
			return last, nil
		}
		w, err := res.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.GetResourceVersion(), AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() != nil {
				return last, errWaitTimedOut
			}
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				continue
			}
			return nil, fmt.Errorf("watch %s: %w", name, err)
		}
		for ev := range w.ResultChan() {
			var obj *unstructured.Unstructured
			switch ev.Type {
			case watch.Added, watch.Modified:
				obj, _ = ev.Object.(*unstructured.Unstructured)
				if obj == nil {
					continue
				}
			case watch.Deleted:
				obj = nil
			default: // bookmarks; errors end the watch and relist
				continue
			}
			last = obj
			if done(obj) {
				w.Stop()
				return obj, nil
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return last, errWaitTimedOut
		}
	}
}

// phase is status.phase of a Velero object ("" when it has none yet).
func phase(o *unstructured.Unstructured) string {
	if o == nil {
		return ""
	}
	p, _, _ := unstructured.NestedString(o.Object, "status", "phase")
	return p
}

// finished reports a phase after which Velero does nothing more.
func finished(p string) bool {
	switch p {
	case "Completed", "PartiallyFailed", "Failed", "FailedValidation":
		return true
	}
	return false
}

// waitFinished waits for a Velero Backup or Restore to reach a final phase
// within timeout; past it, the error is a TimedOut *Problem.
func waitFinished(ctx context.Context, res dynamic.ResourceInterface, kind, name string, timeout time.Duration) (*unstructured.Unstructured, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	obj, err := waitObject(wctx, res, name, func(o *unstructured.Unstructured) bool { return o == nil || finished(phase(o)) })
	if errors.Is(err, errWaitTimedOut) && ctx.Err() == nil {
		p := phase(obj)
		if p == "" {
			p = "none yet"
		}
		return nil, problem(ReasonTimedOut, "%s %s did not finish within %s (phase %s)", kind, name, timeout, p)
	}
	if err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, problem(reasonFor(kind), "%s %s was deleted while ibu waited for it", kind, name)
	}
	return obj, nil
}

func reasonFor(kind string) string {
	if kind == "Restore" {
		return ReasonRestoreFailed
	}
	return ReasonBackupFailed
}
