package ibuctl

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
)

func TestUpgradePublishesThePlanRequest(t *testing.T) {
	h := startTestHub(t)
	out, _, err := h.run(t.Context(), "upgrade", "--plan", "spring", "--seed-image", "quay.io/ibu/seed:4.16.9",
		"--seed-version", "4.16.9", "--pull-secret", "kubernetes-secret:pull:openshift-config",
		"--oadp", "openshift-adp/backup-apps", "--extra-manifests", "apps/extra-1,apps/extra-2",
		"--selector", "env=prod,region in (eu,us),!hold", "--clusters", "sno-01,sno-02",
		"--step", "Prep:20", "--step", "Upgrade,Finalize:5:2h", "--canary", "sno-01",
		"--max-failures", "10%", "--on-breach", "rollback",
		"--window", "Mon-Fri 01:00-05:00 Europe/Paris", "--window", "Sat,Sun 00:00-06:00",
		"--no-auto-rollback")
	if err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	if !strings.Contains(out, "requested plan spring: dev.ibu.plan.create.requested.v1 on ibu.request.plan.create -> IBU_REQUESTS seq 1") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	e := h.takeRequest()
	if e.Source() != "/ibuctl/users/tester" || e.Subject() != "spring" {
		t.Errorf("source %q subject %q", e.Source(), e.Subject())
	}
	got, err := events.DataAs[events.PlanCreateRequested](e)
	if err != nil {
		t.Fatal(err)
	}
	no := false
	want := events.PlanCreateRequested{
		PlanID: "spring", SeedImage: "quay.io/ibu/seed:4.16.9", SeedVersion: "4.16.9",
		PullSecretRef:  &events.SecretRef{Kind: events.SecretKindKubernetes, Name: "pull", Namespace: "openshift-config"},
		OADPContent:    []events.ObjectRef{{Namespace: "openshift-adp", Name: "backup-apps"}},
		ExtraManifests: []events.ObjectRef{{Namespace: "apps", Name: "extra-1"}, {Namespace: "apps", Name: "extra-2"}},
		Clusters: events.ClusterSelection{
			Selector: &events.LabelSelector{MatchLabels: map[string]string{"env": "prod"},
				MatchExpressions: []events.LabelSelectorRequirement{
					{Key: "region", Operator: events.SelectorIn, Values: []string{"eu", "us"}},
					{Key: "hold", Operator: events.SelectorDoesNotExist}}},
			ClusterIDs: []string{"sno-01", "sno-02"}},
		Steps: []events.PlanStep{
			{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 20}},
			{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize},
				RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 5, Timeout: events.Duration(2 * time.Hour)}}},
		Canaries:      []string{"sno-01"},
		FailurePolicy: &events.FailurePolicy{MaxFailures: "10%", OnBreach: events.BreachRollback},
		MaintenanceWindows: []events.MaintenanceWindow{
			{Days: []events.Weekday{"Mon", "Tue", "Wed", "Thu", "Fri"}, Start: "01:00", End: "05:00", TimeZone: "Europe/Paris"},
			{Days: []events.Weekday{"Sat", "Sun"}, Start: "00:00", End: "06:00", TimeZone: "UTC"}},
		AutoRollbackOnFailure: &no,
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("request:\n%s\nwant:\n%s", g, w)
	}
}

func TestUpgradeDefaultsAndJSONOutput(t *testing.T) {
	h := startTestHub(t)
	out, _, err := h.run(t.Context(), "upgrade", "--plan", "p2", "--seed-image", "r/seed@sha256:"+strings.Repeat("a", 64),
		"--seed-version", "4.17.0-rc.1", "--clusters", "a", "-o", "json")
	if err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	var res upgradeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not the JSON result: %v\n%s", err, out)
	}
	want := []events.PlanStep{
		{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 10}},
		{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 10}},
	}
	if !reflect.DeepEqual(res.Request.Steps, want) || res.Stream != bus.StreamRequests || res.EventID == "" {
		t.Fatalf("result: %+v", res)
	}
	got, err := events.DataAs[events.PlanCreateRequested](h.takeRequest())
	if err != nil || !reflect.DeepEqual(got, res.Request) || got.AutoRollbackOnFailure != nil || got.FailurePolicy != nil {
		t.Fatalf("stored request %+v (%v), printed %+v", got, err, res.Request)
	}
}

func TestUpgradeWaitCompleted(t *testing.T) {
	h := startTestHub(t)
	cmd := h.start("upgrade", "--plan", "rollout", "--seed-image", "r/seed:1", "--seed-version", "4.16.9",
		"--selector", "env=prod", "--wait")
	// The test is the scheduler: it answers only once it holds the
	// request, so the command must have subscribed before publishing.
	e := h.takeRequest()
	eta := int64(600)
	// A refusal of someone else's request about the same plan is not ours.
	h.emitPlan("rollout", events.Rejected{PlanID: "rollout", RefusedID: "another-request", Service: "scheduler",
		Reason: "NotAllowed", Message: "not paused"})
	h.emitPlan("rollout", events.PlanStatusChanged{PlanID: "rollout", Phase: events.PlanPending, Reason: "Accepted",
		Counts: events.PlanCounts{Total: 3, Pending: 3}})
	h.emitPlan("rollout", events.PlanStatusChanged{PlanID: "rollout", Phase: events.PlanRunning,
		Counts: events.PlanCounts{Total: 3, Pending: 1, InProgress: 2}, ETASeconds: &eta})
	h.emitPlan("rollout", events.PlanStatusChanged{PlanID: "rollout", Phase: events.PlanCompleted, CurrentStep: 1,
		Counts: events.PlanCounts{Total: 3, Succeeded: 3}})
	if err := cmd.wait(t); err != nil {
		t.Fatalf("upgrade --wait of a Completed plan: %v\n%s", err, cmd.out.String())
	}
	out := cmd.out.String()
	for _, want := range []string{
		"waiting for plan rollout to end",
		"plan rollout: Pending   step 1/2  0/3 succeeded, 0 in progress, 3 pending, 0 failed, 0 skipped  (Accepted)",
		"plan rollout: Running   step 1/2  0/3 succeeded, 2 in progress, 1 pending, 0 failed, 0 skipped  ETA 10m",
		"plan rollout: Completed step 2/2  3/3 succeeded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if e.Type() != events.TypePlanCreateRequested {
		t.Errorf("request type %s", e.Type())
	}
}

func TestUpgradeWaitFailedAndRejected(t *testing.T) {
	h := startTestHub(t)
	cmd := h.start("upgrade", "--plan", "bad", "--seed-image", "r/seed:1", "--seed-version", "4.16.9", "--clusters", "a", "--wait")
	e := h.takeRequest()
	h.emitPlan("bad", events.Rejected{PlanID: "bad", RefusedID: e.ID(), RefusedType: e.Type(), Service: "scheduler",
		Reason: "InvalidSelection", Message: "unknown clusters: a"})
	err := cmd.wait(t)
	oneLineError(t, err, "plan bad: request rejected by scheduler: InvalidSelection: unknown clusters: a")
	var rej *rejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("want a *rejectedError, got %T", err)
	}

	cmd = h.start("upgrade", "--plan", "doomed", "--seed-image", "r/seed:1", "--seed-version", "4.16.9", "--clusters", "a", "--wait")
	h.takeRequest()
	h.emitPlan("doomed", events.PlanStatusChanged{PlanID: "doomed", Phase: events.PlanFailed, Reason: "FailureThresholdReached",
		Message: "2 failed, more than 1", Counts: events.PlanCounts{Total: 4, Failed: 2, Skipped: 2}})
	oneLineError(t, cmd.wait(t), "plan doomed ended Failed: FailureThresholdReached: 2 failed, more than 1 (2 of 4 clusters failed)")
}

func TestUpgradeDryRun(t *testing.T) {
	h := startTestHub(t)
	cmd := h.start("upgrade", "--plan", "try", "--seed-image", "r/seed:1", "--seed-version", "4.16.9",
		"--selector", "env=prod", "--canary", "sno-01", "--dry-run")
	e := h.takeRequest()
	req, err := events.DataAs[events.PlanCreateRequested](e)
	if err != nil || !req.DryRun {
		t.Fatalf("dry-run request: %+v, %v", req, err)
	}
	// Another status of the plan is not the answer.
	h.emitPlan("try", events.PlanStatusChanged{PlanID: "try", Phase: events.PlanRunning, Counts: events.PlanCounts{Total: 1, InProgress: 1}})
	eta := int64(4500)
	h.emitPlan("try", events.PlanStatusChanged{PlanID: "try", Phase: events.PlanPending, Reason: "DryRun",
		Message: "dry run, nothing started: 3 clusters in 2 waves: sno-01 | sno-02,sno-03",
		Counts:  events.PlanCounts{Total: 3, Pending: 3}, ETASeconds: &eta})
	if err := cmd.wait(t); err != nil {
		t.Fatalf("dry run: %v\n%s", err, cmd.out.String())
	}
	out := cmd.out.String()
	for _, want := range []string{
		"requested dry run of plan try",
		"dry run of plan try: 3 clusters, estimated duration 1h15m",
		"dry run, nothing started: 3 clusters in 2 waves: sno-01 | sno-02,sno-03",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// A rejected dry run fails with the reason.
	cmd = h.start("upgrade", "--plan", "try2", "--seed-image", "r/seed:1", "--seed-version", "4.16.9", "--clusters", "x", "--dry-run", "-o", "json")
	e = h.takeRequest()
	h.emitPlan("try2", events.Rejected{PlanID: "try2", RefusedID: e.ID(), Service: "scheduler", Reason: "InvalidPlan", Message: "Prep first"})
	oneLineError(t, cmd.wait(t), "InvalidPlan: Prep first")
	var res upgradeResult
	if err := json.Unmarshal([]byte(cmd.out.String()), &res); err != nil || res.Rejected == nil || res.Rejected.Reason != "InvalidPlan" {
		t.Fatalf("json result of a rejected dry run: %v\n%s", err, cmd.out.String())
	}
}

func TestUpgradeRefusesAnExistingPlan(t *testing.T) {
	h := startTestHub(t)
	h.put(bus.BucketPlans, "spring", state.Plan{Spec: events.PlanCreateRequested{PlanID: "spring"}, Phase: events.PlanRunning})
	_, _, err := h.run(t.Context(), "upgrade", "--plan", "spring", "--seed-image", "r/s:1", "--seed-version", "4.16.9", "--clusters", "a", "--wait")
	oneLineError(t, err, "plan spring already exists (Running)")
}

func TestUpgradeFlagErrors(t *testing.T) {
	base := []string{"upgrade", "--plan", "p", "--seed-image", "r/s:1", "--seed-version", "4.16.9"}
	cases := []struct {
		args  []string
		want  string
		usage bool
	}{
		{[]string{"upgrade", "--seed-image", "r/s:1", "--seed-version", "4.16.9", "--clusters", "a"}, "--plan is required", true},
		{base, "--selector or --clusters", true},
		{append(base, "--clusters", "a", "extra"), "takes no arguments", true},
		{append(base, "--clusters", "a", "--on-breach", "abort"), "--on-breach needs --max-failures", true},
		{append(base, "--clusters", "a", "--wait", "--dry-run"), "leave out --wait", true},
		{append(base, "--clusters", "a", "-o", "xml"), "want table, json or yaml", true},
		{append(base, "--clusters", "a", "--step", "Prep:0"), "not a positive number", true},
		{append(base, "--clusters", "a", "--window", "Mon 25:00-01:00"), "not a time of day", true},
		{append(base, "--clusters", "A"), "invalid id", true},
		{append(base, "--selector", "env in (a"), "invalid selector", false},
		{append(base, "--clusters", "a", "--max-failures", "lots"), "--max-failures \"lots\"", false},
		{append(base, "--clusters", "a", "--max-failures", "3", "--on-breach", "panic"), "want pause, abort or rollback", false},
		{append(base, "--clusters", "a", "--pull-secret", "file:x:rel"), "absolute path", false},
		{[]string{"upgrade", "--plan", "Bad!", "--seed-image", "r/s:1", "--seed-version", "4.16.9", "--clusters", "a"}, "--plan: invalid id", false},
		{[]string{"upgrade", "--plan", "p", "--seed-image", "r/s:1", "--seed-version", "4.16", "--clusters", "a"}, "--seed-version \"4.16\"", false},
		{append(base, "--clusters", "a", "--oadp", "Bad_NS/x"), "invalid plan request: data does not match schema", false},
	}
	for _, c := range cases {
		_, _, err := (&testHub{t: t, url: "nats://127.0.0.1:1"}).run(t.Context(), c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, ErrUsage) != c.usage || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v, want one line with %q (usage %v)", c.args[1:], err, c.want, c.usage)
		}
	}
}

func TestNATSUnreachable(t *testing.T) {
	h := &testHub{t: t, url: "nats://127.0.0.1:1"}
	for _, args := range [][]string{
		{"upgrade", "--plan", "p", "--seed-image", "r/s:1", "--seed-version", "4.16.9", "--clusters", "a"},
		{"plan", "list"},
		{"plan", "get", "p"},
		{"plan", "pause", "p"},
		{"status"},
		{"status", "p", "--watch"},
		{"clusters"},
	} {
		_, _, err := h.run(t.Context(), args...)
		oneLineError(t, err, "connect to NATS at nats://127.0.0.1:1")
	}
	// --nats-url beats $NATS_URL.
	srv := natstest.Start(t)
	_, _, err := h.run(t.Context(), "plan", "list", "--nats-url", srv.URL())
	oneLineError(t, err, "open KV bucket IBU_PLANS: not found")
}
