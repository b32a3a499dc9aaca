package seedbuild_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/capture"
	"ibu.dev/services/seed-builder/seedbuild"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

const seedCluster = "seed-lab"

// rig is a hub with a seed-builder, a seed cluster whose capture worker
// runs on a simulated host, and a registry behind basic auth.
type rig struct {
	js       jetstream.JetStream
	reg      *registrytest.Registry
	host     *capture.SimHost
	authFile string
	dir      string
	seen     map[string]bool
	wait     time.Duration // how long result waits for a build
	replica  func()        // starts one more seed-builder replica
}

func newRig(t testing.TB) *rig {
	t.Helper()
	return newRigWith(t, telemetry.Telemetry{})
}

// newRigWith is newRig with the seed-builders' telemetry (a nil Logger:
// the test's output).
func newRigWith(t testing.TB, tel telemetry.Telemetry) *rig {
	t.Helper()
	_, js := natstest.StartHub(t)
	r := &rig{js: js, reg: registrytest.Start(t, registrytest.WithBasicAuth("builder", "s3cret")), dir: t.TempDir(), seen: map[string]bool{}, wait: time.Minute}
	r.authFile = registrytest.WriteAuthFile(t, r.reg.Host, "builder", "s3cret")
	r.host = &capture.SimHost{Source: simSource(t, r.dir)}
	out := t.Output()
	if _, bench := t.(*testing.B); bench {
		out = os.Stderr // a benchmark's output shows only at its end
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if tel.Logger == nil {
		tel.Logger = log
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	t.Cleanup(func() { cancel(); <-done; <-done })
	w := &capture.Worker{ClusterID: seedCluster, Host: r.host, JS: js, WorkDir: filepath.Join(r.dir, "work"), Telemetry: telemetry.Telemetry{Logger: log}}
	go func() { defer func() { done <- struct{}{} }(); _ = w.Run(ctx) }()
	r.replica = func() {
		svc := seedbuild.New(js, seedbuild.Config{Telemetry: tel, InspectTimeout: 20 * time.Second, CaptureTimeout: 20 * time.Minute, AckWait: 3 * time.Second})
		done := make(chan struct{})
		go func() { defer close(done); _ = svc.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	svc := seedbuild.New(js, seedbuild.Config{Telemetry: tel, InspectTimeout: 20 * time.Second, CaptureTimeout: 20 * time.Minute, AckWait: 3 * time.Second})
	go func() { defer func() { done <- struct{}{} }(); _ = svc.Run(ctx) }()
	r.register(t, seedCluster, stages.IdlePosition)
	return r
}

// simSource lays a small seed host: a deployment root with /etc and its
// default usr/etc, and a /var with things a seed must not carry.
func simSource(t testing.TB, dir string) capture.Source {
	t.Helper()
	s, err := seedsim.New("4.16.3", 12)
	if err != nil {
		t.Fatal(err)
	}
	root, varDir := filepath.Join(dir, "root"), filepath.Join(dir, "var")
	write(t, map[string]string{
		root + "/usr/etc/hostname":            "localhost\n",
		root + "/usr/etc/motd":                "hello\n",
		root + "/usr/etc/os-release":          "ID=rhcos\n",
		root + "/etc/hostname":                "seed\n",
		root + "/etc/os-release":              "ID=rhcos\n",
		root + "/etc/kubernetes/kubelet.conf": "# kubelet\n",
		varDir + "/lib/etcd/member/snap/db":   "etcd data",
		varDir + "/lib/kubelet/config.json":   "{}",
		varDir + "/log/messages":              "a log",
		varDir + "/lib/containers/storage/x":  "an image layer",
		varDir + "/roothome/.bash_history":    "secret command",
	})
	return capture.Source{Info: s.Info, Images: s.Images, Namespaces: []string{"openshift-etcd", "default"},
		CRDs: []string{"clusterversions.config.openshift.io"}, Healthy: true, HealthMessage: "ok", Root: root, VarDir: varDir}
}

func write(t testing.TB, files map[string]string) {
	t.Helper()
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// register writes the inventory and status records a node agent would.
func (r *rig) register(t testing.TB, cluster string, pos stages.Position) {
	t.Helper()
	ctx := context.Background()
	kv := func(bucket string) jetstream.KeyValue {
		b, err := r.js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c, _ := json.Marshal(state.Cluster{ClusterRegistered: events.ClusterRegistered{ClusterID: cluster, Version: "4.16.3"}})
	if _, err := kv(bus.BucketClusters).Put(ctx, cluster, c); err != nil {
		t.Fatal(err)
	}
	s, _ := json.Marshal(state.Status{ClusterID: cluster, Position: pos})
	if _, err := kv(bus.BucketStatus).Put(ctx, cluster, s); err != nil {
		t.Fatal(err)
	}
}

// request publishes a seed build request as any NATS client would.
func (r *rig) request(t testing.TB, build, cluster, image, authFile string) {
	t.Helper()
	r.send(t, events.SeedBuildRequested{BuildID: build, ClusterID: cluster, SeedImage: image,
		PushSecretRef: events.SecretRef{Kind: events.SecretKindDockerConfigFile, Name: "push", Path: authFile}})
}

func (r *rig) send(t testing.TB, req events.SeedBuildRequested) {
	t.Helper()
	cluster := req.ClusterID
	e, err := events.New("/users/test", cluster, req)
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := events.SubjectFor(req.EventType(), cluster)
	if _, err := bus.NewPublisher(r.js).Publish(context.Background(), subject, e); err != nil {
		t.Fatal(err)
	}
}

// result waits for the build's record to end and returns it.
func (r *rig) result(t testing.TB, build string) state.SeedBuild {
	t.Helper()
	kv, err := r.js.KeyValue(context.Background(), bus.BucketSeedBuilds)
	if err != nil {
		t.Fatal(err)
	}
	var rec state.SeedBuild
	natstest.WaitFor(t, r.wait, "build "+build+" ends", func() bool {
		e, err := kv.Get(context.Background(), build)
		if err != nil {
			return false
		}
		if json.Unmarshal(e.Value(), &rec) != nil {
			return false
		}
		return rec.State != state.SeedBuildRunning
	})
	return rec
}

func writeAuth(t testing.TB, host, user, password string) string {
	t.Helper()
	return registrytest.WriteAuthFile(t, host, user, password)
}
