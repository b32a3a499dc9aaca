package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/telemetry"
)

const askCluster = "sno-001"

func healthRequest(id string) bus.Request {
	return bus.Request{Source: "/clusters/" + askCluster + "/node-agent", Cluster: askCluster, ID: id,
		Data:    events.HealthCheckRequested{ClusterID: askCluster, Generation: 1, Step: "PostPivot", StableForSeconds: 1},
		Timeout: waitTimeout}
}

// answerEvent publishes data about askCluster with the given event id on
// its type's subject.
func answerEvent(t *testing.T, pub *bus.Publisher, id string, data events.Data) {
	t.Helper()
	if err := pub.Emit(context.Background(), "/services/health", askCluster, data, bus.EmitID(id)); err != nil {
		t.Fatal(err)
	}
}

func passed(ms int64) events.HealthPassed {
	return events.HealthPassed{ClusterID: askCluster, Generation: 1, Step: "PostPivot", DurationMs: ms}
}

// TestAskServedByTaskWorker: the request reaches the service's TaskWorker,
// whose answer (through Answer) is the one Ask returns.
func TestAskServedByTaskWorker(t *testing.T) {
	_, _, js := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	got := make(chan events.HealthCheckRequested, 1)
	sub, err := bus.ServeTasks(ctx, js, bus.TaskWorker{Service: events.ServiceHealth, Source: "/services/health",
		Telemetry: telemetry.Telemetry{Logger: testLogger(t)},
		Handlers: []bus.TaskHandler{bus.HandleTask(func(_ context.Context, req events.HealthCheckRequested) (events.Data, error) {
			got <- req
			return events.HealthPassed{ClusterID: req.ClusterID, Generation: req.Generation, Step: req.Step, DurationMs: 42}, nil
		})}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	ans, err := bus.Ask[events.HealthPassed](ctx, js, bus.NewPublisher(js), healthRequest(askCluster+".run.1.PostPivot"))
	if err != nil {
		t.Fatal(err)
	}
	if ans.DurationMs != 42 || ans.Step != "PostPivot" {
		t.Errorf("answer %+v", ans)
	}
	if req := <-got; req.Step != "PostPivot" || req.StableForSeconds != 1 {
		t.Errorf("the service got %+v", req)
	}
}

// TestAskAnswerBeforeRequest: an answer given before the request (the
// asker was down) is found from Since.
func TestAskAnswerBeforeRequest(t *testing.T) {
	_, _, js := setup(t)
	pub := bus.NewPublisher(js)
	req := healthRequest("c.r.1.before")
	req.Since = time.Now().Add(-time.Minute)
	answerEvent(t, pub, events.AnswerID(req.ID), passed(7))
	ans, err := bus.Ask[events.HealthPassed](context.Background(), js, pub, req)
	if err != nil || ans.DurationMs != 7 {
		t.Fatalf("Ask = %+v, %v", ans, err)
	}
}

// TestAskIgnoresOthers: answers to other requests, events of other types
// with the answer's id, and malformed events are skipped.
func TestAskIgnoresOthers(t *testing.T) {
	_, _, js := setup(t)
	pub := bus.NewPublisher(js)
	req := healthRequest("c.r.1.mine")
	req.Since = time.Now().Add(-time.Minute)
	answerEvent(t, pub, events.AnswerID("c.r.1.other"), passed(1))                                // another request's
	answerEvent(t, pub, events.AnswerID("c.r.2.mine"), events.HealthFailed{ClusterID: askCluster, // another request's failure
		Generation: 2, Step: "PostPivot", Reason: "TimedOut", Message: "not mine"})
	// Of another type, with the answer's id (and another message id, or
	// JetStream's dedup would drop the real answer below).
	wrong, err := events.New("/services/backup-restore", askCluster, events.BackupCompleted{ClusterID: askCluster, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	wrong.SetID(events.AnswerID(req.ID))
	subject, _ := events.SubjectFor(events.TypeBackupCompleted, askCluster)
	msg, err := bus.ToMsg(subject, wrong)
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Set(jetstream.MsgIDHeader, "wrong-type")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	// Malformed: not a CloudEvent at all, and a health.passed with the
	// answer's id whose data does not match its type.
	if _, err := js.Publish(ctx, "ibu.event."+askCluster+".health.passed", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	bad := nats.NewMsg("ibu.event." + askCluster + ".health.passed")
	bad.Header.Set("ce-specversion", "1.0")
	bad.Header.Set("ce-id", events.AnswerID(req.ID))
	bad.Header.Set("ce-source", "/services/health")
	bad.Header.Set("ce-type", events.TypeHealthPassed)
	bad.Header.Set("ce-subject", askCluster)
	bad.Header.Set("Content-Type", "application/json")
	bad.Header.Set(jetstream.MsgIDHeader, "malformed")
	bad.Data = []byte(`{"clusterId": 5}`)
	if _, err := js.PublishMsg(ctx, bad); err != nil {
		t.Fatal(err)
	}
	answerEvent(t, pub, events.AnswerID(req.ID), passed(99))
	ans, err := bus.Ask[events.HealthPassed](ctx, js, pub, req)
	if err != nil || ans.DurationMs != 99 {
		t.Fatalf("Ask = %+v, %v; want the answer of 99ms", ans, err)
	}
}

// TestAskFailed: a failed answer is a *ServiceError that is
// ErrServiceFailed and carries the reason, the message and the answer.
func TestAskFailed(t *testing.T) {
	_, _, js := setup(t)
	pub := bus.NewPublisher(js)
	req := healthRequest("c.r.1.failed")
	answerEvent(t, pub, events.AnswerID(req.ID), events.HealthFailed{ClusterID: askCluster, Generation: 1, Step: "PostPivot",
		Reason: "OperatorDegraded", Message: "etcd degraded"})
	_, err := bus.Ask[events.HealthPassed](context.Background(), js, pub, req)
	if !errors.Is(err, bus.ErrServiceFailed) {
		t.Fatalf("Ask = %v; want ErrServiceFailed", err)
	}
	var se *bus.ServiceError
	if !errors.As(err, &se) || se.Reason != "OperatorDegraded" || se.Message != "etcd degraded" || se.Service != events.ServiceHealth {
		t.Fatalf("Ask = %#v", err)
	}
	if f, ok := se.Answer.(*events.HealthFailed); !ok || f.Step != "PostPivot" {
		t.Errorf("answer %#v", se.Answer)
	}
	if want := "service reported failure: OperatorDegraded: etcd degraded"; err.Error() != want {
		t.Errorf("error %q; want %q", err, want)
	}
}

// TestAskDeadline: no answer within the timeout is ErrNoAnswer.
func TestAskDeadline(t *testing.T) {
	_, _, js := setup(t)
	req := healthRequest("c.r.1.silent")
	req.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := bus.Ask[events.HealthPassed](context.Background(), js, bus.NewPublisher(js), req)
	if !errors.Is(err, bus.ErrNoAnswer) {
		t.Fatalf("Ask = %v; want ErrNoAnswer", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the deadline of 300ms ended the wait after %s", took)
	}
}

// TestAskCancelled: the wait ends on cancellation while other events keep
// arriving.
func TestAskCancelled(t *testing.T) {
	_, _, js := setup(t)
	pub := bus.NewPublisher(js)
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan struct{})
	flowing := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			subj, e := heartbeat(t, askCluster, i)
			if _, err := pub.Publish(context.Background(), subj, e); err != nil {
				return
			}
			if i == 20 {
				close(flowing)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	res := make(chan error, 1)
	go func() {
		req := healthRequest("c.r.1.cancelled")
		req.Since = time.Now().Add(-time.Minute)
		_, err := bus.Ask[events.HealthPassed](ctx, js, pub, req)
		res <- err
	}()
	<-flowing
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Ask = %v; want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Ask did not end on cancellation")
	}
}

// TestAskRefusesUndeclared: a request outside the contract's pairs, or a
// result type that is not its completed answer, is a programming error.
func TestAskRefusesUndeclared(t *testing.T) {
	_, _, js := setup(t)
	pub := bus.NewPublisher(js)
	req := healthRequest("c.r.1.x")
	if _, err := bus.Ask[events.BackupCompleted](context.Background(), js, pub, req); err == nil {
		t.Error("Ask of health answered as backup.completed: no error")
	}
	req.Data = events.ClusterHeartbeat{ClusterID: askCluster}
	if _, err := bus.Ask[events.HealthPassed](context.Background(), js, pub, req); err == nil {
		t.Error("Ask of a heartbeat: no error")
	}
}
