package ibuctl

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

func TestClusters(t *testing.T) {
	h := startTestHub(t)
	out, _, err := h.run(t.Context(), "clusters")
	if err != nil || out != "no clusters\n" {
		t.Fatalf("empty inventory: %v %q", err, out)
	}
	seen := time.Now().Add(-15 * time.Minute)
	reg := func(id, version string, labels map[string]string) state.Cluster {
		return state.Cluster{ClusterRegistered: events.ClusterRegistered{ClusterID: id, Labels: labels, Version: version,
			BootedStateroot: "rhcos_" + version, AgentVersion: "0.1.0"}, RegisteredAt: seen, LastSeen: seen,
			Stage: stages.Idle, State: stages.Completed}
	}
	h.put(bus.BucketClusters, "sno-01", reg("sno-01", "4.15.3", map[string]string{"env": "prod", "region": "eu"}))
	h.put(bus.BucketClusters, "sno-02", reg("sno-02", "4.15.3", map[string]string{"env": "prod", "region": "us"}))
	h.put(bus.BucketClusters, "sno-03", reg("sno-03", "4.14.9", map[string]string{"env": "dev"}))
	h.put(bus.BucketStatus, "sno-02", state.Status{ClusterID: "sno-02", PlanID: "spring", Step: "Precache",
		Position: stages.Position{Stage: stages.Prep, State: stages.InProgress}, BootedStateroot: "rhcos_4.15.3"})
	h.put(bus.BucketStatus, "sno-01", state.Status{ClusterID: "sno-01", BootedStateroot: "rhcos_4.16.9",
		Position: stages.Position{Stage: stages.Upgrade, State: stages.Completed, AfterPivot: true}})

	out, _, err = h.run(t.Context(), "clusters")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CLUSTER  LABELS              VERSION  BOOTED        STAGE                            STEP      PLAN    LAST SEEN",
		"sno-01   env=prod,region=eu  4.15.3   rhcos_4.16.9  Upgrade/Completed (after pivot)  -         -       15m ago",
		"sno-02   env=prod,region=us  4.15.3   rhcos_4.15.3  Prep/InProgress                  Precache  spring  15m ago",
		"sno-03   env=dev             4.14.9   rhcos_4.14.9  Idle/Completed                   -         -       15m ago",
	}
	if got := strings.TrimSpace(out); got != strings.Join(want, "\n") {
		t.Fatalf("clusters:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	out, _, err = h.run(t.Context(), "clusters", "--selector", "env=prod,region notin (us)", "-o", "json")
	var rows []clusterRow
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].ClusterID != "sno-01" ||
		rows[0].Stage != stages.Upgrade || !rows[0].AfterPivot || !rows[0].Registered || rows[0].Labels["region"] != "eu" {
		t.Fatalf("clusters --selector -o json: %v\n%s", err, out)
	}
	out, _, err = h.run(t.Context(), "clusters", "--selector", "gpu", "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("no match: %v %q", err, out)
	}
	out, _, err = h.run(t.Context(), "clusters", "--selector", "!region", "-o", "yaml")
	if err != nil || !strings.Contains(out, "- clusterId: sno-03\n  labels:\n    env: dev\n  version: 4.14.9\n") {
		t.Fatalf("clusters -o yaml: %v\n%s", err, out)
	}
	_, _, err = h.run(t.Context(), "clusters", "--selector", "env in (a")
	oneLineError(t, err, "--selector: invalid selector")
}
