package agentcmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"ibu.dev/node-agent/agentcmd"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
)

// syncBuffer is a bytes.Buffer safe to read while the agent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunSimRegistersAndStops runs the command with the sim backend against
// a fresh hub (no topology yet): the cluster registers Idle, and a cancel
// stops Run cleanly.
func TestRunSimRegistersAndStops(t *testing.T) {
	srv := natstest.Start(t)
	simDir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	healthAddr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- agentcmd.Run(ctx, []string{
			"--cluster-id", "sno-e2e", "--backend", "sim", "--version", "4.16.3",
			"--labels", "site=lyon", "--sim-dir", simDir, "--log-format", "text",
			"--health-addr", healthAddr,
		}, envOf(map[string]string{"NATS_URL": srv.URL(), "OTEL_TRACES_EXPORTER": "none"}), &stdout, &stderr)
	}()

	_, js := natstest.Connect(t, srv.URL())
	get := func(bucket string, v any) bool {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v\n%s", err, stderr.String())
		default:
		}
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			return false
		}
		e, err := kv.Get(ctx, "sno-e2e")
		if err != nil {
			return false
		}
		if err := json.Unmarshal(e.Value(), v); err != nil {
			t.Fatalf("%s/sno-e2e: %v", bucket, err)
		}
		return true
	}
	var cl state.Cluster
	natstest.WaitFor(t, 30*time.Second, "the cluster in "+bus.BucketClusters, func() bool { return get(bus.BucketClusters, &cl) })
	if cl.Version != "4.16.3" || cl.BootedStateroot != "rhcos" || cl.Labels["site"] != "lyon" {
		t.Errorf("registration %+v", cl.ClusterRegistered)
	}
	natstest.WaitFor(t, 30*time.Second, "status Idle in "+bus.BucketStatus, func() bool {
		var st state.Status
		return get(bus.BucketStatus, &st) && st.Position == stages.IdlePosition
	})
	natstest.WaitFor(t, 10*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if _, err := os.Stat(filepath.Join(simDir, "journal")); err != nil {
		t.Errorf("journal not under --sim-dir: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after cancel\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of the cancel")
	}
	logs := stderr.String()
	for _, want := range []string{"ibu-agent starting", "cluster=sno-e2e", "backend=sim", "nats=" + srv.URL(), "ibu-agent stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

// TestRunOstreeWithoutSysroot: the real backend checks the host before it
// dials the hub, and says what is wrong.
func TestRunOstreeWithoutSysroot(t *testing.T) {
	sysroot := filepath.Join(t.TempDir(), "sysroot")
	var stderr syncBuffer
	err := agentcmd.Run(t.Context(), []string{
		"--cluster-id", "sno-1", "--sysroot", sysroot, "--version", "4.16.3",
		"--journal-dir", filepath.Join(t.TempDir(), "j"), "--nats-url", "nats://127.0.0.1:1",
	}, envOf(nil), &bytes.Buffer{}, &stderr)
	if err == nil || errors.Is(err, agentcmd.ErrUsage) {
		t.Fatalf("err = %v, want a run-time error", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "ostree backend") || !strings.Contains(msg, sysroot) {
		t.Errorf("error %q does not name the backend and the sysroot", msg)
	}
}

func TestRunHelpAndUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := agentcmd.Run(t.Context(), []string{"--help"}, envOf(nil), &stdout, &stderr); err != nil {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(stdout.String(), "--cluster-id ID  ($IBU_CLUSTER_ID)") || stderr.Len() != 0 {
		t.Errorf("help on stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	err := agentcmd.Run(t.Context(), nil, envOf(nil), &stdout, &stderr)
	if !errors.Is(err, agentcmd.ErrUsage) {
		t.Fatalf("no flags: err = %v", err)
	}
}

func TestNoImageStore(t *testing.T) {
	var s agentcmd.NoImageStore
	if _, err := s.Inventory(t.Context()); !errors.Is(err, agentcmd.ErrNoImageStore) {
		t.Errorf("Inventory err = %v", err)
	}
	_, err := s.Pull(t.Context(), "quay.io/x/y@sha256:"+strings.Repeat("0", 64))
	if !errors.Is(err, agentcmd.ErrNoImageStore) || !strings.Contains(err.Error(), "no image store configured (--image-store none)") {
		t.Errorf("Pull err = %v", err)
	}
	if err := s.Remove(t.Context(), "x"); err != nil {
		t.Errorf("Remove err = %v", err)
	}
}

// TestBinary builds the real ibu-agent once and checks its exit codes.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("no go command on PATH: the test builds the real binary")
	}
	bin := filepath.Join(t.TempDir(), "ibu-agent")
	build := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "./cmd/ibu-agent")
	build.Dir = ".." // the node-agent module
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IBU_") && !strings.HasPrefix(kv, "NATS_URL=") {
			env = append(env, kv)
		}
	}
	runBin := func(args ...string) (stdout, stderr string, code int) {
		var o, e bytes.Buffer
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &o, &e
		err := cmd.Run()
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			return o.String(), e.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run %s: %v", bin, err)
		}
		return o.String(), e.String(), 0
	}

	out, _, code := runBin("--help")
	if code != 0 {
		t.Errorf("--help exit %d", code)
	}
	for _, f := range []string{"--cluster-id", "--nats-url", "--backend", "--journal-dir", "--image-store", "--sim-reboot-delay"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help lacks %s:\n%s", f, out)
		}
	}

	_, errOut, code := runBin("--backend", "sim")
	if code != 2 {
		t.Errorf("missing --cluster-id: exit %d, want 2", code)
	}
	if !strings.Contains(errOut, "ibu-agent: --cluster-id is required") {
		t.Errorf("missing --cluster-id: stderr %q", errOut)
	}
}
