package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	simfleet "ibu.dev/demo/fleet"
	"ibu.dev/services/scheduler/rollout"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/telemetry"
)

// usage is what a component's process used: CPU time (user + system, all
// threads) and the high-water mark of its resident set.
type usage struct {
	cpu  time.Duration
	peak uint64 // bytes (VmHWM)
}

// component is the hub or the scheduler, as a process of its own or, with
// --inproc, in this process.
type component interface {
	// Done is closed when the component has stopped, on its own or by Stop.
	Done() <-chan struct{}
	// Err says why it stopped, once Done is closed.
	Err() error
	// Stop stops it and waits.
	Stop() error
	// Usage reads its process's CPU time and peak RSS; false in-process.
	Usage() (usage, bool)
}

// stopTimeout bounds the wait for a component after SIGTERM (or a cancel).
const stopTimeout = 30 * time.Second

// proc is a child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed

	mu      sync.Mutex
	stopped bool // Stop sent SIGTERM: a signal exit is then expected
}

// startProc starts bin with args; its stdout and stderr lines go to the
// given functions (nil: discarded).
func startProc(name, bin string, args []string, stdout, stderr func(line string)) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout = &lineWriter{fn: stdout}
	cmd.Stderr = &lineWriter{fn: stderr}
	// Should this program die without stopping it, the child goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		stopped := p.stopped
		p.mu.Unlock()
		switch {
		case err == nil:
			if !stopped {
				err = fmt.Errorf("%s (pid %d) exited on its own", name, cmd.Process.Pid)
			}
		case stopped && terminatedBySIGTERM(cmd.ProcessState):
			err = nil
		default:
			err = fmt.Errorf("%s (pid %d): %w", name, cmd.Process.Pid, err)
		}
		p.err = err
		close(p.done)
	}()
	return p, nil
}

// terminatedBySIGTERM: the process died of the signal Stop sent.
func terminatedBySIGTERM(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM
}

func (p *proc) Done() <-chan struct{} { return p.done }
func (p *proc) Err() error            { return p.err }
func (p *proc) Pid() int              { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the process to exit; SIGKILL after
// stopTimeout. A process that had already stopped reports why.
func (p *proc) Stop() error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM: killed", p.name, stopTimeout)
	}
}

func (p *proc) Usage() (usage, bool) {
	u, err := procUsage(p.Pid())
	if err != nil {
		return usage{}, false
	}
	return u, true
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procUsage reads a live process's CPU time from /proc/<pid>/stat and its
// RSS high-water mark from /proc/<pid>/status.
func procUsage(pid int) (usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, err
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return usage{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, err
	}
	peak, err := parseStatusKB(status, "VmHWM")
	if err != nil {
		return usage{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return usage{cpu: cpu, peak: peak}, nil
}

// parseStatCPU returns utime + stime of a /proc/<pid>/stat line. The
// command name (field 2) is in parentheses and may hold spaces, so the
// fields are counted from the last ')': state is field 3, utime 14, stime 15.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 and 15
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("utime/stime %q: %w", s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// parseStatusKB returns the value of a "Key:  123 kB" line of
// /proc/<pid>/status, in bytes.
func parseStatusKB(b []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected %q", key, strings.TrimSpace(rest))
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", key, err)
		}
		return v << 10, nil
	}
	return 0, fmt.Errorf("no %s line", key)
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lineWriter calls fn with every complete line written to it (without the
// newline); a last partial line is lost, which a child's log never has.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if w.fn != nil {
			w.fn(string(w.buf[:i]))
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// prefixed writes a child's line to w under its name.
func prefixed(w io.Writer, name string) func(string) {
	var mu sync.Mutex
	return func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s: %s\n", name, line)
	}
}

// buildBinaries builds ibuctl and the scheduler into dir with the go
// command (the workspace's modules; test/go.mod lists both).
func buildBinaries(ctx context.Context, dir string, stderr io.Writer) (ibuctl, sched string, err error) {
	ibuctl, sched = filepath.Join(dir, "ibuctl"), filepath.Join(dir, "scheduler")
	for _, b := range []struct{ out, pkg string }{
		{ibuctl, "ibu.dev/cli/cmd/ibuctl"},
		{sched, "ibu.dev/services/scheduler/cmd/scheduler"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.out, b.pkg)
		cmd.Stderr = stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("go build %s (run fleetbench inside the workspace, or pass --ibuctl and --scheduler): %w", b.pkg, err)
		}
	}
	return ibuctl, sched, nil
}

// hubReadyTimeout bounds the wait for a hub to print its URL.
const hubReadyTimeout = 30 * time.Second

// hubProc is `ibuctl hub` as a process.
type hubProc struct {
	*proc
	url string
}

// startHubProc runs `ibuctl hub --store store --port 0` and waits for the
// URL it prints ("hub ready: NATS_URL=nats://127.0.0.1:PORT ...").
func startHubProc(ctx context.Context, ibuctl, store string, stderr io.Writer) (*hubProc, error) {
	urls := make(chan string, 1)
	stdout := func(line string) {
		_, rest, ok := strings.Cut(line, "NATS_URL=")
		if f := strings.Fields(rest); ok && len(f) > 0 {
			select {
			case urls <- f[0]:
			default:
			}
		}
	}
	p, err := startProc("hub", ibuctl, []string{"hub", "--store", store, "--port", "0"}, stdout, prefixed(stderr, "hub"))
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(hubReadyTimeout)
	defer t.Stop()
	select {
	case url := <-urls:
		return &hubProc{proc: p, url: url}, nil
	case <-p.Done():
		return nil, fmt.Errorf("hub stopped before it was ready: %w", p.Err())
	case <-t.C:
		err = fmt.Errorf("hub printed no NATS_URL within %s", hubReadyTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	return nil, errors.Join(err, p.Stop())
}

// startSchedulerProc runs the scheduler binary against url and waits until
// it logs "scheduler ready" (its caches hold the fleet and it consumes
// plan requests). Its warnings and errors go to stderr.
func startSchedulerProc(ctx context.Context, bin, url string, stderr io.Writer, timeout time.Duration) (*proc, error) {
	ready := make(chan struct{})
	var once sync.Once
	forward := prefixed(stderr, "scheduler")
	lines := func(line string) {
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			forward(line)
			return
		}
		if rec.Msg == "scheduler ready" {
			once.Do(func() { close(ready) })
		}
		if rec.Level != "INFO" && rec.Level != "DEBUG" {
			forward(line)
		}
	}
	p, err := startProc("scheduler", bin, []string{"--nats-url", url, "--name", "bench", "--health-addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "info"}, nil, lines)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ready:
		return p, nil
	case <-p.Done():
		return nil, fmt.Errorf("scheduler stopped before it was ready: %w", p.Err())
	case <-t.C:
		err = fmt.Errorf("scheduler not ready within %s", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	return nil, errors.Join(err, p.Stop())
}

// inproc is a component running as goroutines of this process.
type inproc struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	stop   func() error // after cancel, before done
}

func (c *inproc) Done() <-chan struct{} { return c.done }
func (c *inproc) Err() error            { return c.err }
func (c *inproc) Usage() (usage, bool)  { return usage{}, false }

func (c *inproc) Stop() error {
	c.cancel()
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-c.done:
		return c.err
	case <-t.C:
		return fmt.Errorf("in-process component did not stop within %s", stopTimeout)
	}
}

// startHubInproc runs an embedded nats-server with ibu's topology in this
// process, as `ibuctl hub` does in its own.
func startHubInproc(ctx context.Context, store string) (*inproc, string, error) {
	srv, err := natsembed.StartHub(ctx, natsembed.Config{StoreDir: store})
	if err != nil {
		return nil, "", err
	}
	hctx, cancel := context.WithCancel(context.Background())
	c := &inproc{cancel: cancel, done: make(chan struct{})}
	go func() {
		<-hctx.Done()
		srv.Shutdown()
		close(c.done)
	}()
	return c, srv.URL(), nil
}

// startSchedulerInproc runs a scheduler replica in this process on its own
// connection and waits until it is ready.
func startSchedulerInproc(ctx context.Context, url string, stderr io.Writer, timeout time.Duration) (*inproc, error) {
	nc, js, err := connect(url, "fleetbench-scheduler")
	if err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	var once sync.Once
	log := slog.New(watchHandler{
		Handler: slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}),
		seen: func(msg string) {
			if msg == "scheduler ready" {
				once.Do(func() { close(ready) })
			}
		},
	})
	sctx, cancel := context.WithCancel(context.Background())
	c := &inproc{cancel: cancel, done: make(chan struct{})}
	go func() {
		err := rollout.New(js, rollout.Config{Name: "bench", Telemetry: telemetry.Telemetry{Logger: log}}).Run(sctx)
		if err == nil && sctx.Err() == nil {
			err = errors.New("scheduler stopped on its own")
		}
		nc.Close()
		c.err = err
		close(c.done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		return nil, fmt.Errorf("scheduler stopped before it was ready: %w", c.err)
	case <-t.C:
		err = fmt.Errorf("scheduler not ready within %s", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	return nil, errors.Join(err, c.Stop())
}

// watchHandler shows every record's message to seen and passes warnings
// and errors on.
type watchHandler struct {
	slog.Handler
	seen func(msg string)
}

func (h watchHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h watchHandler) Handle(ctx context.Context, r slog.Record) error {
	h.seen(r.Message)
	if r.Level < slog.LevelWarn {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return watchHandler{Handler: h.Handler.WithAttrs(as), seen: h.seen}
}

func (h watchHandler) WithGroup(name string) slog.Handler {
	return watchHandler{Handler: h.Handler.WithGroup(name), seen: h.seen}
}

// connect opens a NATS connection that reconnects forever.
func connect(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	return simfleet.Connect(url, name)
}
