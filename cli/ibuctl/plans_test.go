package ibuctl

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

func TestPlanListAndGet(t *testing.T) {
	h := startTestHub(t)
	out, _, err := h.run(t.Context(), "plan", "list")
	if err != nil || out != "no plans\n" {
		t.Fatalf("empty list: %v %q", err, out)
	}
	p, _ := handMadePlan()
	p.CreatedAt = time.Now().Add(-62 * time.Minute)
	h.put(bus.BucketPlans, "spring", p)
	paused := p
	paused.Spec.PlanID, paused.Phase, paused.Reason, paused.CurrentStep, paused.ETASeconds = "canary-run", events.PlanPaused, "FailureThresholdReached", 0, nil
	paused.Spec.FailurePolicy = &events.FailurePolicy{MaxFailures: "10%", OnBreach: events.BreachPause}
	paused.Spec.MaintenanceWindows = []events.MaintenanceWindow{{Days: []events.Weekday{"Mon", "Tue", "Wed", "Thu", "Fri"}, Start: "01:00", End: "05:00", TimeZone: "Europe/Paris"}}
	h.put(bus.BucketPlans, "canary-run", paused)

	out, _, err = h.run(t.Context(), "plan", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"PLAN        PHASE    CLUSTERS  SUCCEEDED  IN-PROGRESS  PENDING  FAILED  SKIPPED  STEP                  AGE   ETA",
		"canary-run  Paused   15        8          5            1        1       0        1/2 Prep              1h2m  -",
		"spring      Running  15        8          5            1        1       0        2/2 Upgrade,Finalize  1h2m  14m",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("plan list:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}

	out, _, err = h.run(t.Context(), "plan", "list", "-o", "json")
	var sums []planSummary
	if err != nil || json.Unmarshal([]byte(out), &sums) != nil || len(sums) != 2 || sums[1].PlanID != "spring" ||
		sums[1].Counts.Succeeded != 8 || *sums[1].ETASeconds != 840 || sums[0].Phase != events.PlanPaused {
		t.Fatalf("plan list -o json: %v\n%s", err, out)
	}
	out, _, err = h.run(t.Context(), "plan", "list", "-o", "yaml")
	if err != nil || !strings.Contains(out, "- planId: canary-run\n  phase: Paused\n  reason: FailureThresholdReached\n  counts:\n    total: 15\n") {
		t.Fatalf("plan list -o yaml: %v\n%s", err, out)
	}

	// get: flags after the id work too.
	out, _, err = h.run(t.Context(), "plan", "get", "canary-run")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Plan:            canary-run\n",
		"Phase:           Paused (FailureThresholdReached)\n",
		"Seed:            quay.io/ibu/seed:4.16.9 (4.16.9)\n",
		"Selection:       selector env=prod\n",
		"Steps:           1/2 Prep (max 10 at once)  <- current\n",
		"                 2/2 Upgrade,Finalize (max 5 at once)\n",
		"Failure policy:  more than 10% failed: Pause\n",
		"Windows:         Mon-Fri 01:00-05:00 Europe/Paris\n",
		"Clusters:        15: 1 pending, 5 in progress, 8 succeeded, 1 failed, 0 skipped\n",
		"CLUSTER  CANARY  STEP  ACTION    STATE       REASON              MESSAGE                               SINCE",
		"sno-01   yes     2/2   Finalize  Succeeded   -                   -                                     -",
		"sno-15   -       1/2   Prep      Failed      CheckCompatibility  seed is for x86_64, cluster is arm64",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan get lacks %q:\n%s", want, out)
		}
	}
	out, _, err = h.run(t.Context(), "plan", "get", "spring", "-o", "json")
	var got state.Plan
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.Spec.PlanID != "spring" || len(got.Clusters) != 15 ||
		got.Clusters[14].Reason != "CheckCompatibility" {
		t.Fatalf("plan get -o json: %v\n%s", err, out)
	}

	_, _, err = h.run(t.Context(), "plan", "get", "nope")
	oneLineError(t, err, `no such plan "nope"`)
	_, _, err = h.run(t.Context(), "plan", "get", "Nope!")
	oneLineError(t, err, "plan id: invalid id")
	_, _, err = h.run(t.Context(), "plan", "abort", "nope", "--reason", "x")
	oneLineError(t, err, `no such plan "nope"`)
}

func TestPlanUsage(t *testing.T) {
	h := &testHub{t: t, url: "nats://127.0.0.1:1"}
	for _, args := range [][]string{{"plan"}, {"plan", "frobnicate"}, {"plan", "get"}, {"plan", "get", "a", "b"},
		{"plan", "pause"}, {"plan", "list", "x"}, {"status", "a", "b"}, {"clusters", "x"}, {"plan", "list", "-o", "toml"}} {
		if _, _, err := h.run(t.Context(), args...); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%v: want a usage error, got %v", args, err)
		}
	}
	// -h prints the flags and does nothing else.
	_, errOut, err := h.run(t.Context(), "plan", "get", "-h")
	if err != nil || !strings.Contains(errOut, "-nats-url") {
		t.Errorf("plan get -h: %v\n%s", err, errOut)
	}
}

func TestPlanPauseResumeAbortWait(t *testing.T) {
	h := startTestHub(t)
	p, _ := handMadePlan()
	h.put(bus.BucketPlans, "spring", p)

	// pause without --wait publishes and returns.
	out, _, err := h.run(t.Context(), "plan", "pause", "spring", "--reason", "change freeze")
	if err != nil || !strings.Contains(out, "requested pause of plan spring (now Running): dev.ibu.plan.pause.requested.v1 on ibu.request.plan.pause") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	e := h.takeRequest()
	pause, err := events.DataAs[events.PlanPauseRequested](e)
	if err != nil || pause != (events.PlanPauseRequested{PlanID: "spring", Reason: "change freeze"}) {
		t.Fatalf("pause request: %+v %v", pause, err)
	}

	// resume --wait ends when the plan is no longer Paused.
	cmd := h.start("plan", "resume", "spring", "--wait")
	e = h.takeRequest()
	if e.Type() != events.TypePlanResumeRequested {
		t.Fatalf("request %s", e.Type())
	}
	h.emitPlan("spring", events.PlanStatusChanged{PlanID: "spring", Phase: events.PlanRunning, CurrentStep: 1,
		Counts: events.PlanCounts{Total: 15, Succeeded: 8, InProgress: 7}})
	if err := cmd.wait(t); err != nil || !strings.Contains(cmd.out.String(), "plan spring: Running   step 2/2  8/15 succeeded") {
		t.Fatalf("resume --wait: %v\n%s", err, cmd.out.String())
	}

	// abort --wait: a rejection ends it in error.
	cmd = h.start("plan", "abort", "spring", "--wait")
	e = h.takeRequest()
	h.emitPlan("spring", events.Rejected{PlanID: "spring", RefusedID: e.ID(), Service: "scheduler", Reason: "NotAllowed", Message: "plan spring is Completed"})
	oneLineError(t, cmd.wait(t), "NotAllowed: plan spring is Completed")

	// abort --wait follows Aborting to Aborted.
	cmd = h.start("plan", "abort", "spring", "--wait", "-o", "json")
	h.takeRequest()
	h.emitPlan("spring", events.PlanStatusChanged{PlanID: "spring", Phase: events.PlanAborting, Counts: events.PlanCounts{Total: 15, InProgress: 15}})
	h.emitPlan("spring", events.PlanStatusChanged{PlanID: "spring", Phase: events.PlanAborted, Counts: events.PlanCounts{Total: 15, Skipped: 15}})
	if err := cmd.wait(t); err != nil {
		t.Fatalf("abort --wait: %v\n%s", err, cmd.err.String())
	}
	var res controlResult
	if err := json.Unmarshal([]byte(cmd.out.String()), &res); err != nil || res.Status == nil || res.Status.Phase != events.PlanAborted {
		t.Fatalf("abort -o json: %v\n%s", err, cmd.out.String())
	}
	if !strings.Contains(cmd.err.String(), "plan spring: Aborting") {
		t.Errorf("progress lines go to stderr with -o json:\n%s", cmd.err.String())
	}
}
