package agent_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"ibu.dev/node-agent/agent"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

// services stands in for the health and backup-restore services: answer
// gets every task of the cluster, and its answer (nil: none) is published.
// It records the tasks in order.
type services struct {
	mu    sync.Mutex
	tasks []string // "health:<step>[:<tiers>]", "validate", "backup", "restore"
}

func (s *services) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tasks)
}

func (f *fixture) fakeServices(answer func(e cloudevents.Event) events.Data) *services {
	f.t.Helper()
	s := &services{}
	for _, svc := range []string{events.ServiceHealth, events.ServiceBackupRestore} {
		sub, err := bus.Consume(f.t.Context(), f.js, bus.StreamTasks, svc, func(ctx context.Context, e cloudevents.Event) error {
			s.mu.Lock()
			switch e.Type() {
			case events.TypeHealthCheckRequested:
				req, _ := events.DataAs[events.HealthCheckRequested](e)
				task := "health:" + req.Step
				for _, t := range req.Tiers {
					task += ":" + string(t)
				}
				s.tasks = append(s.tasks, task)
			case events.TypeBackupRequested:
				req, _ := events.DataAs[events.BackupRequested](e)
				if req.ValidateOnly {
					s.tasks = append(s.tasks, "validate")
				} else {
					s.tasks = append(s.tasks, "backup")
				}
			case events.TypeRestoreRequested:
				s.tasks = append(s.tasks, "restore")
			}
			s.mu.Unlock()
			data := answer(e)
			if data == nil {
				return nil
			}
			return bus.NewPublisher(f.js).Answer(ctx, "/services/"+svc, e, data)
		}, bus.ConsumeService(svc), bus.ConsumeFilterSubjects("ibu.task."+svc+".>"))
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(sub.Stop)
	}
	return s
}

// allPass answers every task with success, except where fail answers.
func allPass(fail func(e cloudevents.Event) events.Data) func(e cloudevents.Event) events.Data {
	return func(e cloudevents.Event) events.Data {
		if fail != nil {
			if d := fail(e); d != nil {
				return d
			}
		}
		switch e.Type() {
		case events.TypeHealthCheckRequested:
			req, _ := events.DataAs[events.HealthCheckRequested](e)
			return events.HealthPassed{ClusterID: cluster, Generation: req.Generation, Step: req.Step}
		case events.TypeBackupRequested:
			req, _ := events.DataAs[events.BackupRequested](e)
			return events.BackupCompleted{ClusterID: cluster, Generation: req.Generation}
		case events.TypeRestoreRequested:
			req, _ := events.DataAs[events.RestoreRequested](e)
			return events.RestoreCompleted{ClusterID: cluster, Generation: req.Generation}
		}
		return nil
	}
}

func withAllServices(o *fixtureOpts) { o.services = agent.Services{Health: true, BackupRestore: true} }

var oadpContent = []events.ObjectRef{{Namespace: "openshift-adp", Name: "oadp-cm-example"}}

// TestGatesInOrder: health before Prep, the OADP validation in Prep, health
// then the backup before the pivot, the mandatory tier after it then the
// restore, and health before Finalize.
func TestGatesInOrder(t *testing.T) {
	f := newFixture(t, withAllServices)
	f.oadp = oadpContent
	svc := f.fakeServices(allPass(nil))
	f.start()
	f.waitPosition(prepDone, f.desire(stages.Prep))
	f.waitPosition(upgradeDone, f.desire(stages.Upgrade))
	f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
	want := []string{"health:PrepHealthCheck", "validate", "health:PrePivotHealthCheck", "backup",
		"health:UpgradeHealthCheck:Mandatory", "restore", "health:FinalizeHealthCheck"}
	if got := svc.seen(); !slices.Equal(got, want) {
		t.Fatalf("tasks %v, want %v", got, want)
	}
}

// TestPartiallyFailedBackupStopsBeforePivot: a failed backup fails the
// Upgrade on the old stateroot: no pivot, no reboot, only abort offered.
func TestPartiallyFailedBackupStopsBeforePivot(t *testing.T) {
	f := newFixture(t, withAllServices)
	f.oadp = oadpContent
	f.fakeServices(allPass(func(e cloudevents.Event) events.Data {
		if req, err := events.DataAs[events.BackupRequested](e); err == nil && !req.ValidateOnly {
			return events.BackupFailed{ClusterID: cluster, Generation: req.Generation, Backup: "backup-app",
				Reason: "BackupFailed", Message: "Backup openshift-adp/backup-app ended PartiallyFailed: 1 pod volume backup failed"}
		}
		return nil
	}))
	f.start()
	f.waitPosition(prepDone, f.desire(stages.Prep))
	st := f.waitPosition(stages.Position{Stage: stages.Upgrade, State: stages.Failed}, f.desire(stages.Upgrade))
	if !strings.Contains(st.Message, "PartiallyFailed") {
		t.Errorf("message %q does not carry Velero's reason", st.Message)
	}
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot, newRoot}) {
		t.Errorf("deployments %v: the pivot happened", got)
	}
	if f.spoke.Boots != 0 {
		t.Errorf("host rebooted %d times", f.spoke.Boots)
	}
	if !slices.Equal(st.ValidNextStages, []stages.Stage{stages.Idle}) {
		t.Errorf("valid next %v, want [Idle]", st.ValidNextStages)
	}
}

// TestPrepGatesFailBeforeAnyChange: an unhealthy cluster, or OADP content
// that does not validate, fails Prep before the seed is pulled.
func TestPrepGatesFailBeforeAnyChange(t *testing.T) {
	tests := []struct {
		name, says string
		fail       func(e cloudevents.Event) events.Data
	}{
		{"unhealthy", "ClusterOperator etcd Degraded", func(e cloudevents.Event) events.Data {
			if req, err := events.DataAs[events.HealthCheckRequested](e); err == nil {
				return events.HealthFailed{ClusterID: cluster, Generation: req.Generation, Step: req.Step,
					Reason: "TimedOut", Message: "not healthy within 30m: ClusterOperators OperatorDegraded: ClusterOperator etcd Degraded"}
			}
			return nil
		}},
		{"invalid OADP content", "MissingBackup", func(e cloudevents.Event) events.Data {
			if req, err := events.DataAs[events.BackupRequested](e); err == nil && req.ValidateOnly {
				return events.BackupFailed{ClusterID: cluster, Generation: req.Generation, Reason: "MissingBackup",
					Message: "Restore test-app restores backup nope, which is not among the Backups of the OADP content"}
			}
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, withAllServices)
			f.oadp = oadpContent
			f.fakeServices(allPass(tc.fail))
			f.start()
			st := f.waitPosition(stages.Position{Stage: stages.Prep, State: stages.Failed}, f.desire(stages.Prep))
			if !strings.Contains(st.Message, tc.says) {
				t.Errorf("message %q does not say %q", st.Message, tc.says)
			}
			if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot}) {
				t.Errorf("deployments %v: Prep changed the host", got)
			}
		})
	}
}

// TestFailedRestoreRollsBack: a failed Restore after the pivot fails the
// Upgrade, and auto-rollback takes the host back to the old stateroot.
func TestFailedRestoreRollsBack(t *testing.T) {
	f := newFixture(t, withAllServices)
	f.oadp = oadpContent
	f.fakeServices(allPass(func(e cloudevents.Event) events.Data {
		if req, err := events.DataAs[events.RestoreRequested](e); err == nil {
			return events.RestoreFailed{ClusterID: cluster, Generation: req.Generation, Restore: "test-app",
				Reason: "RestoreFailed", Message: "Restore openshift-adp/test-app ended Failed: error restoring namespace"}
		}
		return nil
	}))
	f.start()
	f.waitPosition(prepDone, f.desire(stages.Prep))
	st := f.waitPosition(rollbackDone, f.desire(stages.Upgrade))
	if got := f.deployments(); !slices.Equal(got, []string{"*" + oldRoot, newRoot}) {
		t.Errorf("deployments %v, want the old stateroot booted", got)
	}
	failed := false
	for _, h := range st.History {
		failed = failed || (h.Stage == stages.Upgrade && h.State == stages.Failed)
	}
	if !failed {
		t.Errorf("history has no failed Upgrade: %+v", st.History)
	}
}
