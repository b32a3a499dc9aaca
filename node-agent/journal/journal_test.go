package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clock returns a fake clock that advances one second per call.
func clock() func() time.Time {
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

func openT(t testing.TB, dir string, opts ...Option) *Journal {
	t.Helper()
	j, err := Open(dir, append([]Option{WithClock(clock())}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j
}

func testRun(id string) Run {
	return Run{
		ID: id, Stage: "Prep", Action: "Prep", Generation: 3, PlanID: "plan-1",
		Inputs:      json.RawMessage(`{"seed":"quay.io/x/seed@sha256:abc","new":"rhcos_4.16.3"}`),
		TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		TraceState:  "vendor=1",
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type deployOut struct {
	Checksum string `json:"checksum"`
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	j := openT(t, dir)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v", fi, err)
	}
	if _, ok, err := j.Current(); ok || err != nil {
		t.Fatalf("empty journal: %v %v", ok, err)
	}
	must(t, j.Start(testRun("Prep-3")))
	if n, err := j.StepStarted("extract", "00-aa-01"); n != 1 || err != nil {
		t.Fatalf("StepStarted = %d, %v", n, err)
	}
	must(t, j.StepDone("extract", nil))
	if _, err := j.StepStarted("deploy", "00-bb-01"); err != nil {
		t.Fatal(err)
	}
	must(t, j.StepDone("deploy", deployOut{Checksum: "c0ffee"}))

	// A fresh Journal (a new agent process) reads the same run.
	r, ok, err := openT(t, dir).Current()
	if err != nil || !ok {
		t.Fatalf("Current = %v, %v", ok, err)
	}
	want, _, _ := j.Current()
	if !reflect.DeepEqual(r, want) {
		t.Errorf("reread run differs:\n got %+v\nwant %+v", r, want)
	}
	if r.ID != "Prep-3" || r.Generation != 3 || r.TraceState != "vendor=1" || string(r.Inputs) != string(testRun("").Inputs) {
		t.Errorf("run fields: %+v", r)
	}
	if r.Started.IsZero() || !r.Finished.IsZero() || len(r.Steps) != 2 || r.Steps[1].TraceParent != "00-bb-01" {
		t.Errorf("run: %+v", r)
	}
	var out deployOut
	if err := r.Output("deploy", &out); err != nil || out.Checksum != "c0ffee" {
		t.Errorf("Output = %+v, %v", out, err)
	}
	if err := r.Output("extract", &out); err == nil {
		t.Error("Output of a step without output: no error")
	}
	if err := r.Output("nope", &out); !errors.Is(err, ErrStepState) {
		t.Errorf("Output of an unknown step = %v", err)
	}
	plan := []string{"extract", "deploy", "var", "etc"}
	if next, ok := r.NextStep(plan); next != "var" || !ok {
		t.Errorf("NextStep = %q, %v", next, ok)
	}

	for _, s := range plan[2:] {
		_, err := j.StepStarted(s, "")
		must(t, err)
		must(t, j.StepDone(s, map[string]int{"n": 1}))
	}
	if next, ok := mustCurrent(t, j).NextStep(plan); ok {
		t.Errorf("NextStep after all done = %q", next)
	}
	must(t, j.Finish(ResultSucceeded, nil))
	r = mustCurrent(t, openT(t, dir))
	if r.Result != ResultSucceeded || r.Finished.IsZero() {
		t.Errorf("finished run: %+v", r)
	}
	must(t, j.Archive())
	if _, ok, _ := j.Current(); ok {
		t.Error("Current after Archive")
	}
	h, err := j.History()
	if err != nil || len(h) != 1 || h[0].ID != "Prep-3" || h[0].Result != ResultSucceeded {
		t.Errorf("History = %+v, %v", h, err)
	}
}

func mustCurrent(t testing.TB, j *Journal) Run {
	t.Helper()
	r, ok, err := j.Current()
	if err != nil || !ok {
		t.Fatalf("Current = %v, %v", ok, err)
	}
	return r
}

// A crash between StepStarted and StepDone: the next agent starts the same
// step again, as attempt 2; a failed step is retried the same way.
func TestCrashBetweenStartedAndDone(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	must(t, j.Start(testRun("Upgrade-4")))
	_, err := j.StepStarted("backup", "")
	must(t, err)
	must(t, j.StepDone("backup", nil))
	_, err = j.StepStarted("pivot", "00-11-01")
	must(t, err)
	// crash: j is dropped here.

	j2 := openT(t, dir)
	r := mustCurrent(t, j2)
	plan := []string{"backup", "pivot", "reboot"}
	if next, ok := r.NextStep(plan); next != "pivot" || !ok {
		t.Fatalf("NextStep = %q, %v", next, ok)
	}
	// The agent restarts the same run: Start with its ID is a no-op.
	must(t, j2.Start(testRun("Upgrade-4")))
	if n, err := j2.StepStarted("pivot", "00-22-01"); n != 2 || err != nil {
		t.Fatalf("second StepStarted = %d, %v", n, err)
	}
	must(t, j2.StepFailed("pivot", errors.New("ostree: disk full")))
	r = mustCurrent(t, openT(t, dir))
	if s, _ := r.Step("pivot"); s.State != StepFailed || s.Error != "ostree: disk full" || s.Attempt != 2 {
		t.Errorf("failed step: %+v", s)
	}
	if next, _ := r.NextStep(plan); next != "pivot" {
		t.Errorf("NextStep after a failure = %q", next)
	}
	if n, err := j2.StepStarted("pivot", ""); n != 3 || err != nil {
		t.Fatalf("third StepStarted = %d, %v", n, err)
	}
	if s, _ := mustCurrent(t, j2).Step("pivot"); s.Error != "" || s.State != StepStarted || !s.Finished.IsZero() {
		t.Errorf("restarted step keeps old state: %+v", s)
	}
}

func TestLeftoverTempFile(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	must(t, j.Start(testRun("Prep-1")))
	tmp := filepath.Join(dir, tmpPrefix+"123456")
	must(t, os.WriteFile(tmp, []byte(`{"format":1,"run":{"id":"Pr`), 0o600))

	j2 := openT(t, dir)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temp file not removed: %v", err)
	}
	if r := mustCurrent(t, j2); r.ID != "Prep-1" {
		t.Errorf("Current = %+v", r)
	}
}

func TestCorrupt(t *testing.T) {
	j0 := openT(t, t.TempDir())
	must(t, j0.Start(testRun("Prep-1")))
	_, err := j0.StepStarted("a", "")
	must(t, err)
	good, err := os.ReadFile(filepath.Join(j0.Dir(), runFile))
	must(t, err)

	for _, tc := range []struct {
		name    string
		content []byte
		want    error
	}{
		{"empty", nil, ErrCorrupt},
		{"truncated", good[:len(good)/2], ErrCorrupt},
		{"not json", []byte("hello\n"), ErrCorrupt},
		{"null", []byte("null"), ErrCorrupt},
		{"no run", []byte(`{"format":1}`), ErrCorrupt},
		{"no format", []byte(`{"run":{"id":"x"}}`), ErrCorrupt},
		{"wrong types", []byte(`{"format":1,"run":{"id":7}}`), ErrCorrupt},
		{"bad id", []byte(`{"format":1,"run":{"id":"../x"}}`), ErrCorrupt},
		{"bad state", []byte(strings.Replace(string(good), `"Started"`, `"Almost"`, 1)), ErrCorrupt},
		{"dup step", []byte(`{"format":1,"run":{"id":"x","steps":[{"name":"a","state":"Done","attempt":1},{"name":"a","state":"Done","attempt":1}]}}`), ErrCorrupt},
		{"result without finish", []byte(`{"format":1,"run":{"id":"x","result":"Succeeded"}}`), ErrCorrupt},
		{"newer format", []byte(strings.Replace(string(good), `"format": 1`, `"format": 2`, 1)), ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, runFile)
			must(t, os.WriteFile(path, tc.content, 0o600))
			j := openT(t, dir)
			_, _, err := j.Current()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Current = %v, want %v naming %s", err, tc.want, path)
			}
			if _, err := j.StepStarted("a", ""); !errors.Is(err, tc.want) {
				t.Errorf("StepStarted = %v", err)
			}
			if err := j.Start(testRun("Prep-2")); !errors.Is(err, tc.want) {
				t.Errorf("Start = %v", err)
			}
			q, err := j.Quarantine()
			if err != nil || !strings.HasPrefix(filepath.Base(q), "quarantined-") {
				t.Fatalf("Quarantine = %q, %v", q, err)
			}
			if _, ok, err := j.Current(); ok || err != nil {
				t.Errorf("after Quarantine: %v, %v", ok, err)
			}
			must(t, j.Start(testRun("Prep-2")))
		})
	}
}

func TestStartRules(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	if err := j.Start(Run{ID: "../etc"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad ID: %v", err)
	}
	if _, err := j.StepStarted("a", ""); !errors.Is(err, ErrNoRun) {
		t.Errorf("StepStarted without a run: %v", err)
	}
	if err := j.Finish(ResultFailed, nil); !errors.Is(err, ErrNoRun) {
		t.Errorf("Finish without a run: %v", err)
	}
	must(t, j.Archive()) // nothing to archive

	must(t, j.Start(testRun("Prep-1")))
	first := mustCurrent(t, j)
	other := testRun("Prep-1")
	other.Generation = 99
	must(t, j.Start(other)) // same ID: no-op
	if r := mustCurrent(t, j); !reflect.DeepEqual(r, first) {
		t.Errorf("same-ID Start changed the run: %+v", r)
	}
	if err := j.Start(testRun("Abort-2")); !errors.Is(err, ErrInProgress) {
		t.Errorf("Start over a run in progress: %v", err)
	}
	if err := j.Archive(); !errors.Is(err, ErrInProgress) {
		t.Errorf("Archive of a run in progress: %v", err)
	}

	if err := j.StepDone("a", nil); !errors.Is(err, ErrStepState) {
		t.Errorf("StepDone before StepStarted: %v", err)
	}
	_, err := j.StepStarted("a", "")
	must(t, err)
	if err := j.StepDone("a", func() {}); err == nil {
		t.Error("StepDone with an unencodable output: no error")
	}
	must(t, j.StepDone("a", nil))
	if err := j.StepDone("a", nil); !errors.Is(err, ErrStepState) {
		t.Errorf("second StepDone: %v", err)
	}
	if _, err := j.StepStarted("a", ""); !errors.Is(err, ErrStepState) {
		t.Errorf("StepStarted of a done step: %v", err)
	}
	if err := j.Finish("Maybe", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("Finish with a bad result: %v", err)
	}
	must(t, j.Finish(ResultFailed, errors.New("step b: boom")))
	if err := j.Finish(ResultFailed, nil); !errors.Is(err, ErrFinished) {
		t.Errorf("second Finish: %v", err)
	}
	if _, err := j.StepStarted("b", ""); !errors.Is(err, ErrFinished) {
		t.Errorf("StepStarted after Finish: %v", err)
	}

	// A resumed run carries its predecessor's done steps (as the agent's
	// ResumePrep does); starting it archives the finished one.
	prev := mustCurrent(t, j)
	next := testRun("ResumePrep-2")
	for _, s := range prev.Steps {
		if s.State == StepDone {
			next.Steps = append(next.Steps, s)
		}
	}
	must(t, j.Start(next))
	r := mustCurrent(t, j)
	if n, _ := r.NextStep([]string{"a", "b"}); n != "b" || r.Result != "" || !r.Finished.IsZero() {
		t.Errorf("resumed run: next %q, %+v", n, r)
	}
	if h, _ := j.History(); len(h) != 1 || h[0].ID != "Prep-1" || h[0].Error != "step b: boom" {
		t.Errorf("History = %+v", h)
	}
}

func TestHistoryBounded(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, WithHistory(3))
	for i := range 6 {
		must(t, j.Start(testRun(fmt.Sprintf("Prep-%d", i))))
		must(t, j.Finish(ResultSucceeded, nil))
		must(t, j.Archive())
	}
	h, err := j.History()
	must(t, err)
	var ids []string
	for _, r := range h {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "Prep-3,Prep-4,Prep-5" {
		t.Errorf("history = %v", ids)
	}
}

// Every write syncs the temp file, renames it over run.json, then syncs the
// directory; a failed rename leaves no temp file and the old content.
func TestDurabilityOrder(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	var ops []string
	var failRename error
	real := osFS()
	j.fs = fsOps{
		syncFile: func(f *os.File) error {
			ops = append(ops, "fsync "+strings.SplitN(filepath.Base(f.Name()), "-", 2)[0])
			return real.syncFile(f)
		},
		rename: func(o, n string) error {
			if failRename != nil {
				return failRename
			}
			ops = append(ops, "rename "+filepath.Base(n))
			return real.rename(o, n)
		},
		syncDir: func(d string) error {
			ops = append(ops, "dirsync "+filepath.Base(d))
			return real.syncDir(d)
		},
	}
	must(t, j.Start(testRun("Prep-1")))
	_, err := j.StepStarted("a", "")
	must(t, err)
	want := []string{"fsync .run.json.tmp", "rename run.json", "dirsync " + filepath.Base(dir)}
	want = append(want, want...)
	if !reflect.DeepEqual(ops, want) {
		t.Errorf("ops = %q\nwant %q", ops, want)
	}

	failRename = errors.New("EIO")
	if err := j.StepDone("a", nil); !errors.Is(err, failRename) {
		t.Fatalf("StepDone with a failing rename = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != runFile {
		t.Errorf("dir after failed write: %v", entries)
	}
	if s, _ := mustCurrent(t, j).Step("a"); s.State != StepStarted {
		t.Errorf("after a failed write the step is %s", s.State)
	}
}

// BenchmarkStep measures one journaled step: StepStarted + StepDone, each
// an atomic rewrite of run.json with two fsyncs, on a run of ten steps.
func BenchmarkStep(b *testing.B) {
	j, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	out := deployOut{Checksum: strings.Repeat("c", 64)}
	run := 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%10 == 0 {
			b.StopTimer()
			if run > 0 {
				must(b, j.Finish(ResultSucceeded, nil))
			}
			run++
			must(b, j.Start(testRun(fmt.Sprintf("Prep-%d", run))))
			b.StartTimer()
		}
		name := fmt.Sprintf("step-%d", i%10)
		if _, err := j.StepStarted(name, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"); err != nil {
			b.Fatal(err)
		}
		if err := j.StepDone(name, out); err != nil {
			b.Fatal(err)
		}
	}
}
