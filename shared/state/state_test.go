package state

import (
	"encoding/json"
	"errors"
	"testing"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

func TestDesiredRoundTripAndValidation(t *testing.T) {
	d := Desired{ClusterID: "sno-001", Stage: stages.Prep, Generation: 4, SeedVersion: "4.16.9", SeedImage: "registry.example/seed:4.16.9"}
	b, err := EncodeDesired(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeDesired(b)
	if err != nil || got.Generation != 4 || got.Stage != stages.Prep {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := DecodeDesired([]byte(`{"clusterId":"sno-001","stage":"Pivot","generation":1}`)); !errors.Is(err, events.ErrSchema) {
		t.Errorf("bad stage: %v, want ErrSchema", err)
	}
	if _, err := EncodeDesired(Desired{ClusterID: "SNO 1", Stage: stages.Prep, Generation: 1}); !errors.Is(err, events.ErrSchema) {
		t.Errorf("bad id encoded: %v", err)
	}
}

func TestStatusJSONFlattensPosition(t *testing.T) {
	b, err := json.Marshal(Status{ClusterID: "sno-001", Position: stages.Position{Stage: stages.Upgrade, State: stages.InProgress, AfterPivot: true}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	if m["stage"] != "Upgrade" || m["state"] != "InProgress" || m["afterPivot"] != true {
		t.Fatalf("status JSON %s", b)
	}
	if got := (Precache{Total: 125, Pulled: 40}).String(); got != "total: 125 (pulled: 40, failed: 0)" {
		t.Errorf("precache string %q", got)
	}
}
