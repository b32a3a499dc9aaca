package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// ErrClusterMismatch: an event names a cluster other than the one its
// subject carries. The subject is what the NATS server checked against the
// publisher's credentials (a spoke may publish only under its own cluster
// id), so the subject wins and the event is refused.
var ErrClusterMismatch = errors.New("cluster in the event differs from the cluster of its subject")

// ClusterOfSubject returns the cluster id a subject is about:
// ibu.event.<cluster>.<name> and ibu.task.<service>.<cluster>. Other
// subjects (plan events, requests) name no cluster.
func ClusterOfSubject(subject string) (string, bool) {
	t := strings.Split(subject, ".")
	switch {
	case len(t) >= 4 && t[0] == "ibu" && t[1] == "event" && t[2] != planToken:
		return t[2], true
	case len(t) == 4 && t[0] == "ibu" && t[1] == "task":
		return t[3], true
	}
	return "", false
}

// CheckSubjectCluster refuses an event received on subject whose CloudEvent
// subject or data clusterId names another cluster than the subject does:
// a service trusts the cluster only from the subject, never the payload.
func CheckSubjectCluster(subject string, e cloudevents.Event) error {
	want, ok := ClusterOfSubject(subject)
	if !ok {
		return nil
	}
	if s := e.Subject(); s != "" && s != want {
		return fmt.Errorf("%w: received on %s (cluster %s), event subject %q", ErrClusterMismatch, subject, want, Clip(s, 80))
	}
	var d struct {
		ClusterID *string `json:"clusterId"`
	}
	if json.Unmarshal(e.Data(), &d) == nil && d.ClusterID != nil && *d.ClusterID != want {
		return fmt.Errorf("%w: received on %s (cluster %s), data clusterId %q", ErrClusterMismatch, subject, want, Clip(*d.ClusterID, 80))
	}
	return nil
}
