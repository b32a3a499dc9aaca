package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// smoke runs the benchmark at 5 clusters with args and checks that every
// figure is printed, the ratio last.
func smoke(t *testing.T, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	args = append([]string{"--clusters", "5", "--max-concurrency", "2", "--dir", t.TempDir(), "--timeout", "1m"}, args...)
	if err := run(t.Context(), args, &out, &errs); err != nil {
		t.Fatalf("fleetbench %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errs.String())
	}
	got := out.String()
	if testing.Verbose() {
		t.Log("\n" + got)
	}
	for _, want := range []string{
		`(?m)^scheduler-driven .*:$`,
		`(?m)^  wall time: +\d`,
		`(?m)^  events/s: +[\d,]+ handled/s`,
		`(?m)^  plan record: +\d+ writes`,
		`(?m)^direct-driven baseline .*:$`,
		`ratio: [\d.]+ \(scheduler-driven .* ÷ direct-driven .*\)\n$`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("output does not match %s:\n%s", want, got)
		}
	}
	return got
}

// The whole run in one process: hub, scheduler and agents.
func TestSmokeInProcess(t *testing.T) {
	smoke(t, "--inproc")
}

// The run as documented: the hub and the scheduler built from the
// workspace and run as processes, their CPU and memory read from /proc.
func TestSmokeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ibuctl and the scheduler")
	}
	got := smoke(t)
	for _, want := range []string{
		`(?m)^  scheduler CPU: +[\d.]+ s during the run = [\d.]+ s/cluster \(peak RSS \d+ MiB\)$`,
		`(?m)^  hub: +peak RSS \d+ MiB; CPU [\d.]+ s`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("output does not match %s:\n%s", want, got)
		}
	}
}

func TestProcUsageOfSelf(t *testing.T) {
	u, err := procUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.peak < 1<<20 || u.cpu < 0 {
		t.Errorf("usage of this test: %+v", u)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 250, stime 50.
	line := []byte("4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0\n")
	cpu, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if cpu.Seconds() != 3 {
		t.Errorf("cpu %s, want 3s", cpu)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("a short line parsed")
	}
	hwm, err := parseStatusKB([]byte("Name:\tx\nVmPeak:\t  900 kB\nVmHWM:\t  1024 kB\n"), "VmHWM")
	if err != nil || hwm != 1<<20 {
		t.Errorf("VmHWM %d, %v; want 1 MiB", hwm, err)
	}
	if _, err := parseStatusKB([]byte("Name:\tx\n"), "VmHWM"); err == nil {
		t.Error("a missing VmHWM parsed")
	}
}

func TestFlags(t *testing.T) {
	c, err := parseFlags([]string{"--clusters", "10, 20"}, &bytes.Buffer{})
	if err != nil || len(c.sizes) != 2 || c.sizes[1] != 20 || c.window != 100 || c.perConn != 50 || !c.baseline {
		t.Errorf("parse: %+v, %v", c, err)
	}
	for _, bad := range [][]string{{"--clusters", "0"}, {"--clusters", "x"}, {"--max-concurrency", "0"}, {"extra"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestThousands(t *testing.T) {
	for v, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := thousands(v); got != want {
			t.Errorf("thousands(%d) = %q, want %q", v, got, want)
		}
	}
}
