package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/host"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

// healthService stands in for the health service: it answers every health
// task of the cluster with answer (nil: never answers).
func (f *fixture) healthService(answer func(req events.HealthCheckRequested) events.Data) {
	f.t.Helper()
	sub, err := bus.Consume(f.t.Context(), f.js, bus.StreamTasks, "health", func(ctx context.Context, e cloudevents.Event) error {
		req, err := events.DataAs[events.HealthCheckRequested](e)
		if err != nil {
			return bus.Permanent(err)
		}
		data := answer(req)
		if data == nil {
			return nil
		}
		return bus.NewPublisher(f.js).Answer(ctx, "/services/health", e, data)
	}, bus.ConsumeService(events.ServiceHealth), bus.ConsumeFilterSubjects("ibu.task.health.>"))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(sub.Stop)
}

func withHealth(o *fixtureOpts) { o.services = agent.Services{Health: true} }

// A host that comes back on the old stateroot after the pivot's reboot has
// not upgraded: Upgrade fails, not after pivot, and only abort is offered.
func TestHostBackOnOldStateroot(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		for {
			err := f.spoke.Once(ctx, f.js)
			if !errors.Is(err, host.ErrRebooting) {
				done <- err
				return
			}
			// The host comes back on the old stateroot, not the default.
			if _, err := f.spoke.Host.BootInto(oldRoot); err != nil {
				done <- err
				return
			}
		}
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	f.waitPosition(prepDone, f.desire(stages.Prep))
	gen := f.desire(stages.Upgrade)
	st := f.waitPosition(stages.Position{Stage: stages.Upgrade, State: stages.Failed}, gen)
	if !strings.Contains(st.Message, "came back on stateroot rhcos") {
		t.Errorf("message %q", st.Message)
	}
	if !slices.Equal(st.ValidNextStages, []stages.Stage{stages.Idle}) {
		t.Errorf("valid next %v, want [Idle]", st.ValidNextStages)
	}
}

// A failure after the pivot rolls back at once when auto-rollback is on.
func TestPostPivotFailureRollsBackAutomatically(t *testing.T) {
	f := newFixture(t, withHealth)
	f.healthService(func(req events.HealthCheckRequested) events.Data {
		if req.Step != "UpgradeHealthCheck" { // only the check after the pivot fails
			return events.HealthPassed{ClusterID: req.ClusterID, Generation: req.Generation, Step: req.Step}
		}
		return events.HealthFailed{ClusterID: req.ClusterID, Generation: req.Generation, Step: req.Step,
			Reason: "OperatorsDegraded", Message: "etcd operator degraded"}
	})
	f.start()
	f.waitPosition(prepDone, f.desire(stages.Prep))
	gen := f.desire(stages.Upgrade)
	st := f.waitPosition(rollbackDone, gen)
	if !slices.Equal(f.deployments(), []string{"*" + oldRoot, newRoot}) {
		t.Errorf("deployments %v", f.deployments())
	}
	var seen []string
	for _, e := range f.events(events.TypeStageChanged) {
		sc, _ := events.DataAs[events.StageChanged](e)
		seen = append(seen, string(sc.Stage)+"/"+string(sc.State))
	}
	if !slices.Contains(seen, "Upgrade/Failed") || seen[len(seen)-1] != "Rollback/Completed" {
		t.Errorf("stage transitions %v", seen)
	}
	if !slices.Equal(st.ValidNextStages, []stages.Stage{stages.Idle}) {
		t.Errorf("valid next %v", st.ValidNextStages)
	}
}

// No healthy report within the init-monitor timeout after the pivot: the
// watchdog rolls back.
func TestInitMonitorTimeoutRollsBack(t *testing.T) {
	f := newFixture(t, withHealth)
	f.spoke.Config.InitMonitorTimeout = 300 * time.Millisecond
	f.healthService(func(req events.HealthCheckRequested) events.Data {
		if req.Step != "UpgradeHealthCheck" {
			return events.HealthPassed{ClusterID: req.ClusterID, Generation: req.Generation, Step: req.Step}
		}
		return nil // the upgraded cluster never reports healthy
	})
	f.start()
	f.waitPosition(prepDone, f.desire(stages.Prep))
	st := f.waitPosition(rollbackDone, f.desire(stages.Upgrade))
	found := false
	for _, h := range st.History {
		if h.Stage == stages.Upgrade && h.State == stages.Failed {
			found = true
		}
	}
	if !found {
		t.Errorf("history has no failed Upgrade: %+v", st.History)
	}
}

// Abort while Prep is in progress stops Prep and removes what it made.
func TestAbortDuringPrep(t *testing.T) {
	f := newFixture(t)
	f.spoke.Images = simImagesSlow()
	f.start()
	f.desire(stages.Prep)
	natstestWait(t, "precache running", func() bool { return f.readStatus().Step == "Precache" })
	gen := f.desire(stages.Idle)
	f.waitPosition(stages.IdlePosition, gen)
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
		t.Fatalf("deployments after abort %v", got)
	}
}
