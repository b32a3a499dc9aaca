// Package journal is the node agent's crash-safe step journal: one JSON file
// (run.json) per run in progress, in a directory both stateroots see,
// replaced atomically (temp file, fsync, rename, fsync of the directory)
// before and after each step, so that after a crash or a reboot the agent
// continues at the first step not done. Finished runs move to history/.
package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Results of a finished run.
const (
	ResultSucceeded = "Succeeded"
	ResultFailed    = "Failed"
)

// States of a step.
const (
	StepStarted = "Started"
	StepDone    = "Done"
	StepFailed  = "Failed"
)

// FormatVersion is the version of run.json this package writes. A file of a
// higher version (written by a newer agent, read after a rollback to the
// old stateroot) is refused with ErrUnsupported rather than misread.
const FormatVersion = 1

// Default number of finished runs kept in history/.
const DefaultHistory = 32

// File names inside the journal directory.
const (
	runFile    = "run.json"
	historyDir = "history"
	tmpPrefix  = "." + runFile + ".tmp-"
)

// Errors. Every error wraps one of these where one applies.
var (
	// ErrCorrupt: run.json cannot be read as a journal (truncated, edited
	// by hand, not JSON, or inconsistent). The message names the file.
	ErrCorrupt = errors.New("journal is corrupt")
	// ErrUnsupported: run.json has a format version this agent does not know.
	ErrUnsupported = errors.New("unsupported journal format")
	// ErrNoRun: there is no current run.
	ErrNoRun = errors.New("no run in the journal")
	// ErrInProgress: another run is in progress (not finished).
	ErrInProgress = errors.New("another run is in progress")
	// ErrFinished: the run has finished; it accepts no more steps.
	ErrFinished = errors.New("run has finished")
	// ErrStepState: the step is not in a state that allows the call.
	ErrStepState = errors.New("invalid step state")
	// ErrInvalid: an argument is malformed (run ID, step name, result).
	ErrInvalid = errors.New("invalid journal argument")
)

// Run is one run of a stage: its identity, inputs and steps.
type Run struct {
	ID          string          `json:"id"`     // unique per run, e.g. "<action>-<generation>"; a file name
	Stage       string          `json:"stage"`  // "Prep", "Upgrade", ...
	Action      string          `json:"action"` // a stages.Action
	Generation  int64           `json:"generation"`
	PlanID      string          `json:"planID,omitempty"`
	Inputs      json.RawMessage `json:"inputs,omitempty"` // written once, by Start
	TraceParent string          `json:"traceParent,omitempty"`
	TraceState  string          `json:"traceState,omitempty"`
	Started     time.Time       `json:"started,omitzero"`
	Finished    time.Time       `json:"finished,omitzero"` // zero while the run is in progress
	Result      string          `json:"result,omitempty"`  // "", ResultSucceeded or ResultFailed
	Error       string          `json:"error,omitempty"`
	Steps       []Step          `json:"steps,omitempty"` // in the order they were first started
}

// Step is one named step of a run.
type Step struct {
	Name        string          `json:"name"`
	State       string          `json:"state"`   // StepStarted, StepDone or StepFailed
	Attempt     int             `json:"attempt"` // 1 on the first start, +1 on each start after
	Started     time.Time       `json:"started,omitzero"`
	Finished    time.Time       `json:"finished,omitzero"`
	Error       string          `json:"error,omitempty"`
	Output      json.RawMessage `json:"output,omitempty"` // what later steps need
	TraceParent string          `json:"traceParent,omitempty"`
}

// file is the on-disk envelope of run.json.
type file struct {
	Format int `json:"format"`
	Run    Run `json:"run"`
}

// Journal is the journal in one directory. It assumes it is the only writer
// of that directory (one agent per host). Its methods are safe for
// concurrent use: the agent's control loop reads the current run while the
// run's goroutine records steps.
type Journal struct {
	mu      sync.Mutex
	dir     string
	history int
	now     func() time.Time
	fs      fsOps

	loaded bool // cur reflects run.json
	cur    *Run // nil: no run.json
}

// Option configures Open.
type Option func(*Journal)

// WithHistory keeps the last n finished runs in history/ (n >= 1).
func WithHistory(n int) Option {
	return func(j *Journal) {
		if n >= 1 {
			j.history = n
		}
	}
}

// WithClock takes the time for Started and Finished from now.
func WithClock(now func() time.Time) Option { return func(j *Journal) { j.now = now } }

// Open opens the journal in dir, creating dir (mode 0700) if needed, and
// removes any temp file a crash left behind. It does not read run.json:
// Current does, and reports a corrupt file.
func Open(dir string, opts ...Option) (*Journal, error) {
	j := &Journal{dir: dir, history: DefaultHistory, now: time.Now, fs: osFS()}
	for _, o := range opts {
		o(j)
	}
	if err := j.open(); err != nil {
		return nil, fmt.Errorf("open journal %s: %w", dir, err)
	}
	return j, nil
}

func (j *Journal) open() error {
	if j.dir == "" {
		return fmt.Errorf("%w: empty directory", ErrInvalid)
	}
	if _, err := os.Stat(j.dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(j.dir, 0o700); err != nil {
			return err
		}
		// Make the new directory's entry durable in its parent.
		if err := j.fs.syncDir(filepath.Dir(j.dir)); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(j.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove leftover temp file: %w", err)
			}
		}
	}
	return nil
}

// Dir returns the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// Current returns the run in progress, or the last finished run not yet
// archived; false if there is none.
func (j *Journal) Current() (Run, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	r, err := j.load()
	if err != nil {
		return Run{}, false, err
	}
	if r == nil {
		return Run{}, false, nil
	}
	return r.clone(), true, nil
}

// Start begins run r. Started defaults to now and any Steps given are kept
// (a resumed run carries the steps its predecessor did). If a finished run
// is current, it is archived first. If a run is in progress, Start is a
// no-op when it has r's ID and fails with ErrInProgress otherwise.
func (j *Journal) Start(r Run) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.start(r); err != nil {
		return fmt.Errorf("journal start %s: %w", r.ID, err)
	}
	return nil
}

func (j *Journal) start(r Run) error {
	cur, err := j.load()
	if err != nil {
		return err
	}
	if cur != nil && cur.Finished.IsZero() {
		if cur.ID == r.ID {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrInProgress, cur.ID)
	}
	r = r.clone()
	r.Finished, r.Result, r.Error = time.Time{}, "", ""
	if r.Started.IsZero() {
		r.Started = j.now().UTC()
	}
	r.compact()
	if err := r.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if cur != nil {
		if err := j.archive(); err != nil {
			return fmt.Errorf("archive previous run %s: %w", cur.ID, err)
		}
	}
	return j.write(&r)
}

// StepStarted records that step name is starting, with the trace parent of
// its span, and returns its attempt number: 1 the first time, one more on
// each start after a crash or a failure. A step already done is refused
// with ErrStepState.
func (j *Journal) StepStarted(name string, traceParent string) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var attempt int
	err := j.update(func(r *Run, now time.Time) error {
		i := r.step(name)
		if i < 0 {
			r.Steps = append(r.Steps, Step{Name: name})
			i = len(r.Steps) - 1
		}
		s := &r.Steps[i]
		if s.State == StepDone {
			return fmt.Errorf("%w: step %s is already done", ErrStepState, name)
		}
		s.State, s.Attempt = StepStarted, s.Attempt+1
		s.Started, s.Finished, s.Error, s.Output = now, time.Time{}, "", nil
		s.TraceParent = traceParent
		attempt = s.Attempt
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("journal step %s started: %w", name, err)
	}
	return attempt, nil
}

// StepDone records that step name finished, with its output (any JSON
// value; nil for none) for later steps. The step must be started.
func (j *Journal) StepDone(name string, output any) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var raw json.RawMessage
	if output != nil {
		b, err := json.Marshal(output)
		if err != nil {
			return fmt.Errorf("journal step %s done: encode output: %w", name, err)
		}
		if !bytes.Equal(b, []byte("null")) {
			raw = b
		}
	}
	err := j.update(func(r *Run, now time.Time) error {
		s, err := r.started(name)
		if err != nil {
			return err
		}
		s.State, s.Finished, s.Output = StepDone, now, raw
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal step %s done: %w", name, err)
	}
	return nil
}

// StepFailed records that step name failed with stepErr. The step must be
// started. A later StepStarted retries it.
func (j *Journal) StepFailed(name string, stepErr error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	msg := "failed"
	if stepErr != nil {
		msg = stepErr.Error()
	}
	err := j.update(func(r *Run, now time.Time) error {
		s, err := r.started(name)
		if err != nil {
			return err
		}
		s.State, s.Finished, s.Error = StepFailed, now, msg
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal step %s failed: %w", name, err)
	}
	return nil
}

// Finish ends the current run with result (ResultSucceeded or ResultFailed)
// and runErr's message. A finished run is refused with ErrFinished.
func (j *Journal) Finish(result string, runErr error) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if result != ResultSucceeded && result != ResultFailed {
		return fmt.Errorf("journal finish: %w: result %q", ErrInvalid, result)
	}
	err := j.update(func(r *Run, now time.Time) error {
		r.Finished, r.Result, r.Error = now, result, ""
		if runErr != nil {
			r.Error = runErr.Error()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal finish: %w", err)
	}
	return nil
}

// Archive moves the finished current run to history/<id>.json and drops
// the oldest history beyond the limit. Without a current run it does
// nothing; a run in progress is refused with ErrInProgress.
func (j *Journal) Archive() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	cur, err := j.load()
	if err != nil {
		return fmt.Errorf("journal archive: %w", err)
	}
	if cur == nil {
		return nil
	}
	if cur.Finished.IsZero() {
		return fmt.Errorf("journal archive: %w: %s", ErrInProgress, cur.ID)
	}
	if err := j.archive(); err != nil {
		return fmt.Errorf("journal archive %s: %w", cur.ID, err)
	}
	return nil
}

// Quarantine moves run.json, whatever it holds (a corrupt file included),
// to history/ under a name that says so, and returns its new path: the way
// out of ErrCorrupt once the file has been looked at. Without run.json it
// returns "".
func (j *Journal) Quarantine() (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	src := filepath.Join(j.dir, runFile)
	if _, err := os.Lstat(src); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	now := j.now()
	dst := filepath.Join(j.dir, historyDir, fmt.Sprintf("quarantined-%d.json", now.UnixNano()))
	if err := j.moveToHistory(src, dst, now); err != nil {
		return "", fmt.Errorf("journal quarantine: %w", err)
	}
	return dst, nil
}

// History returns the archived runs, oldest first. Files that cannot be
// read as a run (quarantined ones) are skipped.
func (j *Journal) History() ([]Run, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	entries, err := os.ReadDir(filepath.Join(j.dir, historyDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal history: %w", err)
	}
	var runs []Run
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), "quarantined-") {
			continue
		}
		r, err := readRun(filepath.Join(j.dir, historyDir, e.Name()))
		if err != nil || r == nil {
			continue
		}
		runs = append(runs, *r)
	}
	slices.SortStableFunc(runs, func(a, b Run) int { return a.Finished.Compare(b.Finished) })
	return runs, nil
}

// NextStep returns the first step of plan that is not done in r; false if
// every step of plan is done.
func (r Run) NextStep(plan []string) (string, bool) {
	for _, name := range plan {
		if i := r.step(name); i < 0 || r.Steps[i].State != StepDone {
			return name, true
		}
	}
	return "", false
}

// Step returns the step called name; false if it never started.
func (r Run) Step(name string) (Step, bool) {
	if i := r.step(name); i >= 0 {
		return r.Steps[i], true
	}
	return Step{}, false
}

// Output decodes the output of the done step called name into v.
func (r Run) Output(step string, v any) error {
	i := r.step(step)
	if i < 0 || r.Steps[i].State != StepDone {
		return fmt.Errorf("output of step %s: %w: not done", step, ErrStepState)
	}
	if len(r.Steps[i].Output) == 0 {
		return fmt.Errorf("output of step %s: the step recorded none", step)
	}
	if err := json.Unmarshal(r.Steps[i].Output, v); err != nil {
		return fmt.Errorf("output of step %s: %w", step, err)
	}
	return nil
}

func (r Run) step(name string) int {
	return slices.IndexFunc(r.Steps, func(s Step) bool { return s.Name == name })
}

// started returns the step called name, which must be in state Started.
func (r *Run) started(name string) (*Step, error) {
	i := r.step(name)
	if i < 0 {
		return nil, fmt.Errorf("%w: step %s was not started", ErrStepState, name)
	}
	if s := &r.Steps[i]; s.State == StepStarted {
		return s, nil
	}
	return nil, fmt.Errorf("%w: step %s is %s, not %s", ErrStepState, name, r.Steps[i].State, StepStarted)
}

// compact rewrites the raw JSON fields without insignificant space, as a
// reread of the indented file gives them back; invalid JSON is left for
// validate to report.
func (r *Run) compact() {
	c := func(raw json.RawMessage) json.RawMessage {
		var buf bytes.Buffer
		if len(raw) == 0 || json.Compact(&buf, raw) != nil {
			return raw
		}
		return buf.Bytes()
	}
	r.Inputs = c(r.Inputs)
	for i := range r.Steps {
		r.Steps[i].Output = c(r.Steps[i].Output)
	}
}

func (r Run) clone() Run {
	r.Inputs = bytes.Clone(r.Inputs)
	r.Steps = slices.Clone(r.Steps)
	for i := range r.Steps {
		r.Steps[i].Output = bytes.Clone(r.Steps[i].Output)
	}
	return r
}

// validate checks what the journal relies on; it does not judge the
// caller's stage, action or inputs.
func (r Run) validate() error {
	if !validID(r.ID) {
		return fmt.Errorf("run ID %q: want 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'", r.ID)
	}
	switch r.Result {
	case "", ResultSucceeded, ResultFailed:
	default:
		return fmt.Errorf("run %s: unknown result %q", r.ID, r.Result)
	}
	if (r.Result == "") != r.Finished.IsZero() {
		return fmt.Errorf("run %s: result %q does not match finish time %v", r.ID, r.Result, r.Finished)
	}
	if len(r.Inputs) > 0 && !json.Valid(r.Inputs) {
		return fmt.Errorf("run %s: inputs are not valid JSON", r.ID)
	}
	seen := map[string]bool{}
	for _, s := range r.Steps {
		if s.Name == "" {
			return fmt.Errorf("run %s: a step has no name", r.ID)
		}
		if seen[s.Name] {
			return fmt.Errorf("run %s: step %s appears twice", r.ID, s.Name)
		}
		seen[s.Name] = true
		switch s.State {
		case StepStarted, StepDone, StepFailed:
		default:
			return fmt.Errorf("run %s: step %s has unknown state %q", r.ID, s.Name, s.State)
		}
		if s.Attempt < 1 {
			return fmt.Errorf("run %s: step %s has attempt %d", r.ID, s.Name, s.Attempt)
		}
		if len(s.Output) > 0 && !json.Valid(s.Output) {
			return fmt.Errorf("run %s: step %s output is not valid JSON", r.ID, s.Name)
		}
	}
	return nil
}

func validID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' || id[0] == '-' {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// update applies fn to a copy of the run in progress and writes it.
func (j *Journal) update(fn func(r *Run, now time.Time) error) error {
	cur, err := j.load()
	if err != nil {
		return err
	}
	if cur == nil {
		return ErrNoRun
	}
	if !cur.Finished.IsZero() {
		return fmt.Errorf("%w: %s (%s)", ErrFinished, cur.ID, cur.Result)
	}
	r := cur.clone()
	if err := fn(&r, j.now().UTC()); err != nil {
		return err
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return j.write(&r)
}

// load returns the current run, reading run.json the first time.
func (j *Journal) load() (*Run, error) {
	if j.loaded {
		return j.cur, nil
	}
	r, err := readRun(filepath.Join(j.dir, runFile))
	if err != nil {
		return nil, err
	}
	j.cur, j.loaded = r, true
	return r, nil
}

// readRun reads a journal file; nil if it does not exist.
func readRun(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var f struct {
		Format *int `json:"format"`
		Run    *Run `json:"run"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	switch {
	case f.Format == nil || f.Run == nil:
		return nil, fmt.Errorf("%w: %s: missing format or run", ErrCorrupt, path)
	case *f.Format > FormatVersion:
		return nil, fmt.Errorf("%w: %s has format %d, this agent reads up to %d", ErrUnsupported, path, *f.Format, FormatVersion)
	case *f.Format < 1:
		return nil, fmt.Errorf("%w: %s: format %d", ErrCorrupt, path, *f.Format)
	}
	f.Run.compact()
	if err := f.Run.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return f.Run, nil
}

// write replaces run.json with r atomically and makes it the cached run.
func (j *Journal) write(r *Run) error {
	b, err := json.MarshalIndent(file{Format: FormatVersion, Run: *r}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode run %s: %w", r.ID, err)
	}
	// Whatever happens on disk from here, reread it next time.
	j.loaded, j.cur = false, nil
	if err := j.writeAtomic(filepath.Join(j.dir, runFile), append(b, '\n')); err != nil {
		return err
	}
	j.loaded, j.cur = true, r
	return nil
}

// writeAtomic writes data to a temp file in path's directory, syncs it,
// renames it over path and syncs the directory.
func (j *Journal) writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = j.fs.syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := j.fs.rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := j.fs.syncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}

// archive moves run.json to history/<id>.json and prunes the history.
func (j *Journal) archive() error {
	cur, err := j.load()
	if err != nil || cur == nil {
		return err
	}
	dst := filepath.Join(j.dir, historyDir, cur.ID+".json")
	if err := j.moveToHistory(filepath.Join(j.dir, runFile), dst, cur.Finished); err != nil {
		return err
	}
	return j.prune()
}

// moveToHistory renames src to dst, dated at (the modification time prune
// orders by), and makes the move durable.
func (j *Journal) moveToHistory(src, dst string, at time.Time) error {
	j.loaded, j.cur = false, nil
	hd := filepath.Dir(dst)
	if err := os.MkdirAll(hd, 0o700); err != nil {
		return err
	}
	if err := j.fs.rename(src, dst); err != nil {
		return err
	}
	if err := os.Chtimes(dst, at, at); err != nil {
		return err
	}
	if err := j.fs.syncDir(hd); err != nil {
		return err
	}
	return j.fs.syncDir(j.dir)
}

// prune removes the oldest history files beyond the limit, by modification
// time (set to the run's finish by archive).
func (j *Journal) prune() error {
	hd := filepath.Join(j.dir, historyDir)
	entries, err := os.ReadDir(hd)
	if err != nil {
		return err
	}
	type item struct {
		name string
		mod  time.Time
	}
	var items []item
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		items = append(items, item{e.Name(), info.ModTime()})
	}
	if len(items) <= j.history {
		return nil
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	for _, it := range items[:len(items)-j.history] {
		if err := os.Remove(filepath.Join(hd, it.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("prune history: %w", err)
		}
	}
	return nil
}

// fsOps are the durability operations, replaceable in tests to check their
// order and to inject failures.
type fsOps struct {
	syncFile func(f *os.File) error
	rename   func(oldpath, newpath string) error
	syncDir  func(dir string) error
}

func osFS() fsOps {
	return fsOps{
		syncFile: (*os.File).Sync,
		rename:   os.Rename,
		syncDir: func(dir string) error {
			d, err := os.Open(dir)
			if err != nil {
				return err
			}
			err = d.Sync()
			if cerr := d.Close(); err == nil {
				err = cerr
			}
			return err
		},
	}
}
