package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ibu.dev/shared/natsconn"
	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/testkit/natstest"
)

// syncBuffer is a log sink tests read while the service writes.
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

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The service starts before NATS: alive but not ready, a clear retry log
// line; NATS comes up: ready, the run function runs; SIGTERM (ctx): it
// stops cleanly and drains.
func TestRunWaitsForNATSThenReadyThenStops(t *testing.T) {
	port := freePort(t)
	addrCh := make(chan string, 1)
	logs := &syncBuffer{}
	cfg := Config{
		Name: "test", NATS: natsconn.Config{URL: "nats://127.0.0.1:" + strconv.Itoa(port)}, StreamReplicas: 1,
		HealthAddr: "127.0.0.1:0", LogLevel: "info", LogFormat: "json",
		ConnectBackoffMin: 20 * time.Millisecond, ConnectBackoffMax: 100 * time.Millisecond,
		Metrics:  http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ibu_up 1\n") }),
		OnListen: func(a string) { addrCh <- a },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, logs, func(ctx context.Context, s *Service) error {
			if _, err := s.JS.KeyValue(ctx, "IBU_DESIRED"); err != nil {
				t.Errorf("topology not ensured before run: %v", err)
			}
			close(ran)
			<-ctx.Done()
			return nil
		})
	}()
	base := "http://" + <-addrCh
	if code, _ := get(base + "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d while NATS is down, want 200", code)
	}
	natstest.WaitFor(t, 10*time.Second, "the retry log line", func() bool {
		return strings.Contains(logs.String(), "cannot reach NATS; retrying with backoff")
	})
	if code, body := get(base + "/readyz"); code != 503 || !strings.Contains(body, "not connected") {
		t.Fatalf("/readyz = %d %q while NATS is down, want 503 not connected", code, body)
	}
	natstest.Start(t, func(c *natsembed.Config) { c.Port = port })
	select {
	case <-ran:
	case err := <-done:
		t.Fatalf("run returned before NATS came up: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("run function not called 20s after NATS came up")
	}
	if code, body := get(base + "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q once connected, want 200", code, body)
	}
	if code, body := get(base + "/metrics"); code != 200 || body != "ibu_up 1\n" {
		t.Fatalf("/metrics = %d %q", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop 30s after cancel")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Fatalf("no stop line in the logs:\n%s", logs)
	}
}

func TestRunRefusesBadSettings(t *testing.T) {
	for name, cfg := range map[string]Config{
		"replicas":  {Name: "x", NATS: natsconn.Config{URL: "nats://127.0.0.1:1"}, StreamReplicas: 0},
		"creds":     {Name: "x", NATS: natsconn.Config{URL: "nats://127.0.0.1:1", Creds: "/nonexistent.creds"}, StreamReplicas: 1},
		"log level": {Name: "x", NATS: natsconn.Config{URL: "nats://127.0.0.1:1"}, StreamReplicas: 1, LogLevel: "loud"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Run(context.Background(), cfg, io.Discard, func(context.Context, *Service) error { return nil })
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Run = %v, want a bad-setting error", err)
			}
		})
	}
}

func TestFlagsReadEnvironment(t *testing.T) {
	env := map[string]string{"NATS_URL": "nats://hub:4222", "IBU_STREAM_REPLICAS": "3", "IBU_HEALTH_ADDR": ":9000"}
	fs := newFlagSet()
	cfg := Flags("svc", fs, func(k string) string { return env[k] })
	if err := fs.Parse([]string{"--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.URL != "nats://hub:4222" || cfg.StreamReplicas != 3 || cfg.HealthAddr != ":9000" || cfg.LogLevel != "debug" {
		t.Fatalf("config %+v", cfg)
	}
}
