package events

import (
	"fmt"
	"sort"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// Ask is one request/answer pair of the contract: a task sent by Asker to
// Service, answered on the cluster's event subject by an event of type
// Completed (the work was done) or Failed (it could not be), whose id is
// the task's id followed by ".answer".
type Ask struct {
	Request   string // the task's type
	Completed string // the type of the answer that the work was done
	Failed    string // the type of the answer that it was not; its data is a Failure
	Asker     string // the component that sends the task
	Service   string // the task subject token of who answers
}

// Failure is the data of a failed answer: why the service did not do what
// it was asked, as a CamelCase reason and a message for people.
type Failure interface {
	Data
	Failure() (reason, message string)
}

// AnswerIDSuffix ends the id of every answer: an answer's id is its task's
// id followed by it.
const AnswerIDSuffix = ".answer"

// AnswerID is the event id of the answer to the task whose id is taskID.
func AnswerID(taskID string) string { return taskID + AnswerIDSuffix }

// Askers of the contract's pairs.
const (
	AskerNodeAgent   = ServiceNodeAgent
	AskerSeedBuilder = ServiceSeedBuilder
)

var asks = map[string]Ask{}

func init() {
	for _, a := range []Ask{
		{Request: TypeHealthCheckRequested, Completed: TypeHealthPassed, Failed: TypeHealthFailed,
			Asker: AskerNodeAgent, Service: ServiceHealth},
		{Request: TypeBackupRequested, Completed: TypeBackupCompleted, Failed: TypeBackupFailed,
			Asker: AskerNodeAgent, Service: ServiceBackupRestore},
		{Request: TypeRestoreRequested, Completed: TypeRestoreCompleted, Failed: TypeRestoreFailed,
			Asker: AskerNodeAgent, Service: ServiceBackupRestore},
		{Request: TypePrecacheRequested, Completed: TypePrecachePlanned, Failed: TypePrecacheFailed,
			Asker: AskerNodeAgent, Service: ServicePrecache},
		{Request: TypeSeedCaptureRequested, Completed: TypeSeedCaptureCompleted, Failed: TypeSeedCaptureFailed,
			Asker: AskerSeedBuilder, Service: ServiceSeedCapture},
	} {
		asks[a.Request] = a
	}
}

// AskOf returns the pair whose request has type requestType.
func AskOf(requestType string) (Ask, bool) {
	a, ok := asks[requestType]
	return a, ok
}

// Asks returns every pair of the contract, sorted by request type.
func Asks() []Ask {
	out := make([]Ask, 0, len(asks))
	for _, a := range asks {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Request < out[j].Request })
	return out
}

// ClusterEventFilter is the subject filter of every event about cluster:
// ibu.event.<cluster>.>. It is the one filter a spoke may follow its
// answers with.
func ClusterEventFilter(cluster string) (string, error) {
	if err := ValidID(cluster); err != nil {
		return "", fmt.Errorf("cluster event filter: cluster: %w", err)
	}
	if cluster == planToken {
		return "", fmt.Errorf("cluster event filter: %q is the plan namespace: %w", cluster, ErrInvalidID)
	}
	return "ibu.event." + cluster + ".>", nil
}

// FailureOf decodes the data of a failed answer: a pointer to the Go type
// of e's type (e.g. *SeedCaptureFailed), which must be a Failure.
func FailureOf(e cloudevents.Event) (Failure, error) {
	s, ok := Lookup(e.Type())
	if !ok {
		return nil, decodeErr(ErrUnknownType, e.Type(), e.ID(), "not a type of the contract")
	}
	f, ok := s.NewData().(Failure)
	if !ok {
		return nil, decodeErr(ErrSchema, e.Type(), e.ID(), "%s is not a failed answer", e.Type())
	}
	if err := decodeData(e.Data(), f); err != nil {
		return nil, decodeErr(ErrSchema, e.Type(), e.ID(), "decode data: %v", err)
	}
	return f, nil
}

// Failure implements Failure.
func (f HealthFailed) Failure() (reason, message string) { return f.Reason, f.Message }

// Failure implements Failure.
func (f BackupFailed) Failure() (reason, message string) { return f.Reason, f.Message }

// Failure implements Failure.
func (f RestoreFailed) Failure() (reason, message string) { return f.Reason, f.Message }

// Failure implements Failure.
func (f PrecacheFailed) Failure() (reason, message string) { return f.Reason, f.Message }

// Failure implements Failure.
func (f SeedCaptureFailed) Failure() (reason, message string) { return f.Reason, f.Message }
