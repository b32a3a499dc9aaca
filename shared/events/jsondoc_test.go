package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseDocMatchesEncodingJSON(t *testing.T) {
	cases := []string{
		`{}`, `[]`, `{"a":1,"b":[true,false,null,"x"],"c":{"d":-1.5e3}}`,
		` { "s" : "esc\"aped\\ \u00e9 \ud83d\ude00" , "n" : 12345678901234567890 } `,
		`"top"`, `42`, `[{"a":[{"b":{}}]}]`,
	}
	for _, c := range cases {
		got, dup, err := parseDoc([]byte(c))
		if err != nil || dup != "" {
			t.Fatalf("%s: dup %q err %v", c, dup, err)
		}
		var want any
		dec := json.NewDecoder(bytes.NewReader([]byte(c)))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", c, got, want)
		}
	}
}

func TestParseDocFindsDuplicates(t *testing.T) {
	for in, want := range map[string]string{
		`{"a":1,"a":2}`:                 "a",
		`{"x":{"k":1,"k":1}}`:           "k",
		`[{"a":1},{"a":2}]`:             "",
		`{"a":{"a":1}}`:                 "",
		`{"a\u0062":1,"ab":2}`:          "ab",
		`{"z":[1,{"q":1,"r":2,"q":3}]}`: "q",
	} {
		_, dup, err := parseDoc([]byte(in))
		if err != nil || dup != want {
			t.Errorf("%s: dup %q err %v, want %q", in, dup, err, want)
		}
	}
}

func TestParseDocRefusesMalformed(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `tru`, `"unterminated`, `{} {}`, `{"a":1}]`, `01x`, `-`} {
		if _, _, err := parseDoc([]byte(in)); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	e, err := New("/clusters/sno-001/node-agent", "sno-001", StageChanged{
		ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3, Stage: StageUpgrade, State: StateInProgress,
		PreviousStage: StagePrep, PreviousState: StateCompleted, ValidNextStages: []Stage{StageIdle},
		Conditions: []Condition{{Type: "UpgradeInProgress", Status: ConditionTrue, Reason: "InProgress", Message: "backing up"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(e); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidateData(t *testing.T) {
	good := []byte(`{"clusterId":"sno-001","stage":"Prep","generation":2,"seedImage":"registry.example/seed@sha256:` + strings.Repeat("a", 64) + `","seedVersion":"4.16.9"}`)
	if err := ValidateData(TypeDesiredStageSet, good); err != nil {
		t.Fatalf("valid desired state refused: %v", err)
	}
	for name, c := range map[string]struct {
		typ  string
		data string
		want error
	}{
		"unknown type":  {"dev.ibu.nope.v1", `{}`, ErrUnknownType},
		"bad stage":     {TypeDesiredStageSet, `{"clusterId":"sno-001","stage":"Reboot","generation":1}`, ErrSchema},
		"not json":      {TypeDesiredStageSet, `stage=Prep`, ErrNotJSON},
		"duplicate key": {TypeDesiredStageSet, `{"clusterId":"sno-001","stage":"Prep","stage":"Idle","generation":1}`, ErrSchema},
	} {
		if err := ValidateData(c.typ, []byte(c.data)); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
		}
	}
}
