package ibuctl

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

func TestParseStep(t *testing.T) {
	acts := func(a ...stages.Action) []stages.Action { return a }
	cases := []struct {
		in   string
		want stepSpec
		err  string
	}{
		{in: "Prep", want: stepSpec{actions: acts(stages.ActionPrep)}},
		{in: "upgrade,FINALIZE", want: stepSpec{actions: acts(stages.ActionUpgrade, stages.ActionFinalize)}},
		{in: "Upgrade+Finalize", want: stepSpec{actions: acts(stages.ActionUpgrade, stages.ActionFinalize)}},
		{in: "Upgrade,Finalize:5:2h", want: stepSpec{actions: acts(stages.ActionUpgrade, stages.ActionFinalize), concurrency: 5, timeout: 2 * time.Hour}},
		{in: "Upgrade,Finalize::90m", want: stepSpec{actions: acts(stages.ActionUpgrade, stages.ActionFinalize), timeout: 90 * time.Minute}},
		{in: "Prep:3", want: stepSpec{actions: acts(stages.ActionPrep), concurrency: 3}},
		{in: "Prep,AbortOnFailure", want: stepSpec{actions: acts(stages.ActionPrep, stages.ActionAbortOnFailure)}},
		{in: "", err: "no action"},
		{in: ":5", err: "no action"},
		{in: "Prep,Reboot", err: `unknown action "Reboot"`},
		{in: "Prep,prep", err: "given twice"},
		{in: "Prep:0", err: "not a positive number"},
		{in: "Prep:x", err: "not a positive number"},
		{in: "Prep:2:soon", err: "not a positive duration"},
		{in: "Prep:2:-1h", err: "not a positive duration"},
		{in: "Prep:2:1h:x", err: "want ACTIONS"},
	}
	for _, c := range cases {
		got, err := parseStep(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestPlanStepsDefaults(t *testing.T) {
	got := planSteps(nil, 7)
	want := []events.PlanStep{
		{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 7}},
		{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}, RolloutStrategy: events.RolloutStrategy{MaxConcurrency: 7}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("default steps: got %+v, want %+v", got, want)
	}
	s, _ := parseStep("Upgrade:2:1h")
	got = planSteps([]stepSpec{s}, 7)
	if r := got[0].RolloutStrategy; r.MaxConcurrency != 2 || time.Duration(r.Timeout) != time.Hour {
		t.Fatalf("explicit step: %+v", got)
	}
}

func TestParseWindow(t *testing.T) {
	wd := func(d ...events.Weekday) []events.Weekday { return d }
	cases := []struct {
		in   string
		want events.MaintenanceWindow
		err  string
	}{
		{in: "Mon-Fri 01:00-05:00 Europe/Paris", want: events.MaintenanceWindow{Days: wd("Mon", "Tue", "Wed", "Thu", "Fri"), Start: "01:00", End: "05:00", TimeZone: "Europe/Paris"}},
		{in: "sat,sun 22:00-4:30", want: events.MaintenanceWindow{Days: wd("Sat", "Sun"), Start: "22:00", End: "04:30", TimeZone: "UTC"}},
		{in: "Fri-Mon 00:00-23:59 America/New_York", want: events.MaintenanceWindow{Days: wd("Mon", "Fri", "Sat", "Sun"), Start: "00:00", End: "23:59", TimeZone: "America/New_York"}},
		{in: "Mon,Wed-Thu,Wed 02:00-03:00 UTC", want: events.MaintenanceWindow{Days: wd("Mon", "Wed", "Thu"), Start: "02:00", End: "03:00", TimeZone: "UTC"}},
		{in: "daily 01:00-02:00", want: events.MaintenanceWindow{Days: wd("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), Start: "01:00", End: "02:00", TimeZone: "UTC"}},
		{in: "* 01:00-02:00", want: events.MaintenanceWindow{Days: wd("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), Start: "01:00", End: "02:00", TimeZone: "UTC"}},
		{in: "Tuesday 01:00-02:00", want: events.MaintenanceWindow{Days: wd("Tue"), Start: "01:00", End: "02:00", TimeZone: "UTC"}},
		{in: "Mon-Fri", err: "want 'DAYS HH:MM-HH:MM"},
		{in: "Mon-Fri 01:00-05:00 Europe/Paris extra", err: "want 'DAYS HH:MM-HH:MM"},
		{in: "Mon-Fry 01:00-05:00", err: `unknown day "Fry"`},
		{in: "Mon 01:00", err: "HH:MM-HH:MM"},
		{in: "Mon 24:00-05:00", err: "not a time of day"},
		{in: "Mon 01:60-05:00", err: "not a time of day"},
		{in: "Mon 1:5-05:00", err: "not a time of day"},
		{in: "Mon 01:00-01:00", err: "never opens"},
		{in: "Mon 01:00-05:00 Mars/Olympus", err: "unknown time zone"},
		{in: "Mon 01:00-05:00 Local", err: "unknown time zone"},
	}
	for _, c := range cases {
		got, err := parseWindow(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if back := formatDays(got.Days); back == "" {
			t.Errorf("%q: formatDays is empty", c.in)
		}
	}
	if got := formatDays([]events.Weekday{"Mon", "Tue", "Wed", "Fri", "Sun"}); got != "Mon-Wed,Fri,Sun" {
		t.Errorf("formatDays: %q", got)
	}
}

func TestParsePullSecret(t *testing.T) {
	cases := []struct {
		in   string
		want events.SecretRef
		err  string
	}{
		{in: "kubernetes-secret:pull", want: events.SecretRef{Kind: events.SecretKindKubernetes, Name: "pull"}},
		{in: "kubernetes-secret:pull:openshift-config", want: events.SecretRef{Kind: events.SecretKindKubernetes, Name: "pull", Namespace: "openshift-config"}},
		{in: "secret:pull:ns", want: events.SecretRef{Kind: events.SecretKindKubernetes, Name: "pull", Namespace: "ns"}},
		{in: "dockerconfig-file:pull:/etc/ibu/config.json", want: events.SecretRef{Kind: events.SecretKindDockerConfigFile, Name: "pull", Path: "/etc/ibu/config.json"}},
		{in: "file:pull:/a:b/c.json", want: events.SecretRef{Kind: events.SecretKindDockerConfigFile, Name: "pull", Path: "/a:b/c.json"}},
		{in: "pull", err: "want kubernetes-secret:NAME"},
		{in: "kubernetes-secret:", err: "want kubernetes-secret:NAME"},
		{in: "kubernetes-secret:pull:", err: "empty namespace"},
		{in: "dockerconfig-file:pull", err: "absolute path"},
		{in: "dockerconfig-file:pull:config.json", err: "absolute path"},
		{in: "vault:pull", err: `unknown kind "vault"`},
	}
	for _, c := range cases {
		got, err := parsePullSecret(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%q: got %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParseObjectRefsAndIDs(t *testing.T) {
	refs, err := parseObjectRefs("openshift-adp/oadp-cm, apps/extra")
	want := []events.ObjectRef{{Namespace: "openshift-adp", Name: "oadp-cm"}, {Namespace: "apps", Name: "extra"}}
	if err != nil || !reflect.DeepEqual(refs, want) {
		t.Fatalf("refs: %+v, %v", refs, err)
	}
	for _, bad := range []string{"noslash", "/name", "ns/", "a/b/c", "a/b,"} {
		if _, err := parseObjectRefs(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	ids, err := parseIDs("sno-1, sno-2,sno-1")
	if err != nil || !reflect.DeepEqual(ids, []string{"sno-1", "sno-2"}) {
		t.Fatalf("ids: %v, %v", ids, err)
	}
	for _, bad := range []string{"", "SNO", "a,,b", "plan"} {
		if _, err := parseIDs(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestParseArgsIntersperses(t *testing.T) {
	fs := newFlags("x", IO{Err: &strings.Builder{}})
	o := fs.String("o", "table", "")
	w := fs.Bool("wait", false, "")
	pos, help, err := parseArgs(fs, []string{"get", "spring", "-o", "json", "--wait", "--", "-x"})
	if err != nil || help || *o != "json" || !*w || !reflect.DeepEqual(pos, []string{"get", "spring", "-x"}) {
		t.Fatalf("pos %v help %v err %v o %q wait %v", pos, help, err, *o, *w)
	}
}

func TestJSONToYAML(t *testing.T) {
	got, err := jsonToYAML([]byte(`{"b":"2026-01-02T03:04:05Z","a":"123","n":12,"t":true,"s":"yes","l":["x",{"k":null}],"e":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `b: "2026-01-02T03:04:05Z"
a: "123"
"n": 12
t: true
s: "yes"
l:
  - x
  - k: null
e: {}
`
	if string(got) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}
