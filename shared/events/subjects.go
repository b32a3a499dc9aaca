package events

import (
	"errors"
	"fmt"
	"regexp"
)

// Stream subject filters (the topology table in docs/architecture.md).
const (
	SubjectRequests = "ibu.request.>"
	SubjectTasks    = "ibu.task.>"
	SubjectEvents   = "ibu.event.>"
	SubjectDLQ      = "ibu.dlq.>"
)

// Service names, as they appear in task and DLQ subjects and in Rejected.
const (
	ServiceScheduler     = "scheduler"
	ServiceSeedBuilder   = "seed-builder"
	ServicePrecache      = "precache"
	ServiceBackupRestore = "backup-restore"
	ServiceHealth        = "health"
	ServiceNodeAgent     = "node-agent"
)

// planToken is the subject token of the plan namespace,
// ibu.event.plan.<plan>.<name>, and so cannot be a cluster id.
const planToken = "plan"

// ErrInvalidID is wrapped by every error of ValidID.
var ErrInvalidID = errors.New("invalid id")

var (
	idRE      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	serviceRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	nameRE    = regexp.MustCompile(`^[a-z0-9][-a-z0-9]*(\.[a-z0-9][-a-z0-9]*)*$`)
)

// ValidID checks a cluster or plan id: a DNS label (RFC 1123: lower-case
// letters, digits and '-', 1 to 63 characters, starting and ending with a
// letter or digit), so it is one NATS subject token, one KV key and a valid
// Kubernetes name; and not "plan", which is reserved.
func ValidID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidID)
	case !idRE.MatchString(id):
		return fmt.Errorf("%w %q: want a DNS label: 1-63 lower-case letters, digits or '-', starting and ending with a letter or digit", ErrInvalidID, Clip(id, 80))
	case id == planToken:
		return fmt.Errorf("%w %q: reserved, since ibu.event.plan.* is the namespace of plan events and a cluster named %q would be mistaken for it", ErrInvalidID, id, id)
	}
	return nil
}

func validService(s string) error {
	if !serviceRE.MatchString(s) {
		return fmt.Errorf("service name %q is not a subject token (lower-case letters, digits, '-')", Clip(s, 80))
	}
	return nil
}

func validName(n string) error {
	if !nameRE.MatchString(n) {
		return fmt.Errorf("event name %q is not dot-separated subject tokens (lower-case letters, digits, '-')", Clip(n, 80))
	}
	return nil
}

// RequestSubject is where a request of the given name (Spec.Name) travels:
// ibu.request.<name>.
func RequestSubject(name string) (string, error) {
	if err := validName(name); err != nil {
		return "", fmt.Errorf("request subject: %w", err)
	}
	return "ibu.request." + name, nil
}

// TaskSubject is where work for service about cluster travels:
// ibu.task.<service>.<cluster>. The cluster id in the subject lets a service
// replica beside one spoke consume only that spoke's tasks.
func TaskSubject(service, cluster string) (string, error) {
	if err := validService(service); err != nil {
		return "", fmt.Errorf("task subject: %w", err)
	}
	if err := ValidID(cluster); err != nil {
		return "", fmt.Errorf("task subject: cluster: %w", err)
	}
	return "ibu.task." + service + "." + cluster, nil
}

// ClusterEventSubject is where an event about cluster travels:
// ibu.event.<cluster>.<name>.
func ClusterEventSubject(cluster, name string) (string, error) {
	if err := ValidID(cluster); err != nil {
		return "", fmt.Errorf("cluster event subject: cluster: %w", err)
	}
	if err := validName(name); err != nil {
		return "", fmt.Errorf("cluster event subject: %w", err)
	}
	return "ibu.event." + cluster + "." + name, nil
}

// PlanEventSubject is where an event about plan travels:
// ibu.event.plan.<plan>.<name>.
func PlanEventSubject(plan, name string) (string, error) {
	if err := ValidID(plan); err != nil {
		return "", fmt.Errorf("plan event subject: plan: %w", err)
	}
	if err := validName(name); err != nil {
		return "", fmt.Errorf("plan event subject: %w", err)
	}
	return "ibu.event." + planToken + "." + plan + "." + name, nil
}

// PlanEventFilter is the subject filter of every event about plan:
// ibu.event.plan.<plan>.>.
func PlanEventFilter(plan string) (string, error) {
	if err := ValidID(plan); err != nil {
		return "", fmt.Errorf("plan event filter: plan: %w", err)
	}
	return "ibu.event." + planToken + "." + plan + ".>", nil
}

// DLQSubject is where service puts the messages it refused: ibu.dlq.<service>.
func DLQSubject(service string) (string, error) {
	if err := validService(service); err != nil {
		return "", fmt.Errorf("dlq subject: %w", err)
	}
	return "ibu.dlq." + service, nil
}

// SubjectFor is the subject of an event of type typ about id: a cluster id
// for cluster events and tasks, a plan id for plan events; requests ignore
// id. The error wraps ErrUnknownType for a type outside the contract.
func SubjectFor(typ, id string) (string, error) {
	s, ok := Lookup(typ)
	if !ok {
		return "", fmt.Errorf("subject for %q: %w", Clip(typ, 256), ErrUnknownType)
	}
	switch s.Scope {
	case ScopeRequest:
		return RequestSubject(s.Name)
	case ScopeTask:
		return TaskSubject(s.Service, id)
	case ScopeCluster:
		return ClusterEventSubject(id, s.Name)
	case ScopePlan:
		return PlanEventSubject(id, s.Name)
	}
	return "", fmt.Errorf("subject for %s: scope %d not handled", typ, s.Scope)
}
