package hubbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/natsauth"
	"ibu.dev/shared/testkit/natstest"
)

// server is a nats-server process built from the module the workspace
// uses, in JWT mode, with its monitoring endpoint.
type server struct {
	url, monitor string
}

func freePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startServer(b *testing.B, trust *natsauth.Trust) server {
	b.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		b.Fatalf("the go command is needed to build nats-server: %v (install Go 1.26)", err)
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "nats-server")
	build := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build nats-server: %v\n%s", err, out)
	}
	port, mport := freePort(b), freePort(b)
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\nmax_connections: 100000\njetstream { store_dir: %q }\n%s",
		port, mport, filepath.Join(dir, "js"), trust.ServerConfig(filepath.Join(dir, "jwt")))
	cf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "nats-server.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s := server{url: fmt.Sprintf("nats://127.0.0.1:%d", port), monitor: fmt.Sprintf("http://127.0.0.1:%d", mport)}
	natstest.WaitFor(b, 30*time.Second, "nats-server up", func() bool { _, err := s.varz(); return err == nil })
	return s
}

type varz struct {
	Mem         int64 `json:"mem"`
	Connections int   `json:"connections"`
}

func (s server) varz() (varz, error) {
	var v varz
	resp, err := http.Get(s.monitor + "/varz")
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// settledMem is the server's resident memory once it stops moving much.
func (s server) settledMem(b *testing.B) int64 {
	b.Helper()
	var last int64
	for range 20 {
		v, err := s.varz()
		if err != nil {
			b.Fatal(err)
		}
		if last != 0 && abs(v.Mem-last) < last/100 {
			return v.Mem
		}
		last = v.Mem
		time.Sleep(250 * time.Millisecond) // sampling a process's memory, not synchronising
	}
	return last
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

type spoke struct {
	id string
	nc *nats.Conn
	w  jetstream.KeyWatcher
}

// BenchmarkHubSpokes: IBU_BENCH_SPOKES (default 2,000) spokes connect
// with their own credentials and watch their own desired key; then the
// scheduler's connection writes every desired key at once. It prints the
// server's memory per connected spoke, with and without the watch
// (spoke-mem:), and the p99 delay from a desired write to the spoke seeing
// it (desired-p99:).
func BenchmarkHubSpokes(b *testing.B) {
	n := 2000
	if v := os.Getenv("IBU_BENCH_SPOKES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("IBU_BENCH_SPOKES %q: %v", v, err)
		}
	}
	trust, err := natsauth.NewTrust("bench")
	if err != nil {
		b.Fatal(err)
	}
	srv := startServer(b, trust)
	credsDir := b.TempDir()
	write := func(name string, u natsauth.User) string {
		c, err := trust.Issue(u)
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(credsDir, name+".creds")
		if err := os.WriteFile(p, c, 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	_, hub := natstest.Connect(b, srv.url, nats.UserCredentials(write("scheduler", natsauth.ServiceUser("scheduler", 0))))
	ctx := context.Background()
	if err := bus.EnsureTopology(ctx, hub); err != nil {
		b.Fatal(err)
	}
	desired, err := hub.KeyValue(ctx, bus.BucketDesired)
	if err != nil {
		b.Fatal(err)
	}
	base := srv.settledMem(b)

	spokes := make([]*spoke, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range spokes {
		id := fmt.Sprintf("sno-%05d", i)
		u, err := natsauth.SpokeUser(id, 0)
		if err != nil {
			b.Fatal(err)
		}
		creds := write(id, u)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			nc, err := nats.Connect(srv.url, nats.UserCredentials(creds), nats.CustomInboxPrefix(natsauth.SpokeInboxPrefix(id)))
			if err != nil {
				errs <- fmt.Errorf("%s connect: %w", id, err)
				return
			}
			spokes[i] = &spoke{id: id, nc: nc}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, s := range spokes {
			if s.w != nil {
				_ = s.w.Stop()
			}
			s.nc.Close()
		}
	})
	connMem := srv.settledMem(b)

	// For comparison: what one core subscription per spoke costs (the
	// alternative to a per-spoke JetStream consumer: the desired bucket
	// republishing each write to a subject the spoke subscribes to).
	for _, s := range spokes {
		if _, err := s.nc.SubscribeSync(natsauth.SpokeInboxPrefix(s.id) + ".desired"); err != nil {
			b.Fatal(err)
		}
		if err := s.nc.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	subMem := srv.settledMem(b)

	// Every spoke watches its own key, as the agent does.
	seen := make([]chan time.Time, n)
	for i, s := range spokes {
		js, err := jetstream.New(s.nc)
		if err != nil {
			b.Fatal(err)
		}
		kv, err := js.KeyValue(ctx, bus.BucketDesired)
		if err != nil {
			b.Fatalf("%s: bucket: %v", s.id, err)
		}
		s.w, err = kv.Watch(ctx, s.id, jetstream.UpdatesOnly())
		if err != nil {
			b.Fatalf("%s: watch: %v", s.id, err)
		}
		seen[i] = make(chan time.Time, 1)
		go func() {
			for e := range s.w.Updates() {
				if e != nil {
					select {
					case seen[i] <- time.Now():
					default:
					}
				}
			}
		}()
	}
	watchMem := srv.settledMem(b)

	b.ResetTimer()
	// All desired keys change at once: 32 writers, like a scheduler that
	// starts a whole fleet.
	written := make([]time.Time, n)
	var wwg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range 32 {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for i := range next {
				written[i] = time.Now()
				if _, err := desired.Put(ctx, spokes[i].id, []byte(`{"stage":"Prep","generation":1}`)); err != nil {
					b.Errorf("put %s: %v", spokes[i].id, err)
				}
			}
		}()
	}
	wwg.Wait()
	delays := make([]time.Duration, n)
	for i := range n {
		select {
		case at := <-seen[i]:
			delays[i] = at.Sub(written[i])
		case <-time.After(60 * time.Second):
			b.Fatalf("%s never saw its desired state", spokes[i].id)
		}
	}
	b.StopTimer()
	slices.Sort(delays)
	p := func(q float64) time.Duration { return delays[int(q*float64(n-1))] }
	perConn := float64(connMem-base) / float64(n) / 1024
	perSub := float64(subMem-connMem) / float64(n) / 1024
	perWatch := float64(watchMem-subMem) / float64(n) / 1024
	fmt.Printf("spokes: %d (own JWT credentials, one connection and one desired-key watch each)\n", n)
	fmt.Printf("spoke-mem: %.1f KiB/spoke (connection %.1f KiB + watch consumer %.1f KiB; server %d MiB with the fleet, %d MiB without)\n",
		perConn+perWatch, perConn, perWatch, watchMem>>20, base>>20)
	fmt.Printf("core-sub-mem: %.1f KiB/spoke (one core subscription, the alternative to the watch consumer)\n", perSub)
	fmt.Printf("desired-p99: %.1f ms (p50 %.1f ms, max %.1f ms; %d desired writes at once by 32 writers)\n",
		ms(p(0.99)), ms(p(0.50)), ms(delays[n-1]), n)
	b.ReportMetric(perConn+perWatch, "KiB/spoke")
	b.ReportMetric(ms(p(0.99)), "p99-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
