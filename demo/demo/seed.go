package demo

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/node-agent/agent"
	"ibu.dev/node-agent/agent/simspoke"
	"ibu.dev/node-agent/capture"
	"ibu.dev/services/seed-builder/seedbuild"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
)

const demoSeedCluster = "seed-lab"

// buildSeed builds the demo's seed the way a fleet gets one: a simulated
// seed cluster running the target release (a real node agent on a
// simulated host, with its capture worker), the real seed-builder, and seed
// build requests on ibu.request.seed.build. A request with a wrong password
// is refused before the seed cluster is touched; the next one captures,
// pushes, reads back and tags. The returned stop ends the seed cluster and
// the seed-seedbuild.
func (d *demo) buildSeed(ctx context.Context, dir string) (seedimage.Summary, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }
	fail := func(err error) (seedimage.Summary, func(), error) { stop(); return seedimage.Summary{}, func() {}, err }

	synth, err := seedsim.New("4.16.9", 0)
	if err != nil {
		return fail(err)
	}
	// The release's container images, for precache: real images in the
	// registry that share a base layer and a layer per group of 25.
	reg := d.reg
	set, err := seedsim.ImageSet{Count: 125, BaseSize: 256 << 10, GroupSize: 25, GroupBytes: 64 << 10, OwnBytes: 16 << 10, Seed: 1}.
		Push(ctx, reg.Host(), "ocp-release", reg.Transport())
	if err != nil {
		return fail(fmt.Errorf("push the release images: %w", err))
	}
	d.images = set
	synth.Images = set.Images
	d.say("seed", "pushed %d release images (%.1f MiB in all, %.1f MiB of distinct layers)", len(set.Images), mib(set.NaiveBytes), mib(set.UniqueBytes))
	spoke := simspoke.New(agent.Config{ClusterID: demoSeedCluster, Version: synth.Info.Version, Fingerprint: seedsim.Fingerprint(),
		Labels: map[string]string{"role": "seed"}, HeartbeatInterval: time.Second, AgentVersion: "demo"},
		filepath.Join(dir, demoSeedCluster), "rhcos")
	spoke.Logger = d.log
	wg.Go(func() { _ = spoke.Run(ctx, d.js) })
	if err := d.waitIdle(ctx, demoSeedCluster); err != nil {
		return fail(err)
	}
	booted, err := spoke.Host.Stateroots().Booted(ctx)
	if err != nil {
		return fail(err)
	}
	root, varDir, err := spoke.Host.Stateroots().Paths(ctx, booted.Stateroot)
	if err != nil {
		return fail(err)
	}
	if err := writeTree(map[string]string{
		root + "/usr/etc/hostname": "localhost\n", root + "/usr/etc/motd": "welcome\n",
		root + "/etc/hostname": "seed-lab\n", root + "/etc/kubernetes/kubelet.conf": "# kubelet 4.16.9\n",
		varDir + "/lib/etcd/member/snap/db": "etcd 4.16.9", varDir + "/lib/kubelet/config.json": "{}\n",
		varDir + "/log/journal/system.journal": "logs stay behind", varDir + "/lib/containers/storage/overlay/l": "so do images",
	}); err != nil {
		return fail(err)
	}
	info := synth.Info
	info.OstreeCommit = booted.Checksum // the capture exports the booted commit
	host := &capture.SimHost{Source: capture.Source{Info: info, Images: synth.Images, Root: root, VarDir: varDir,
		Namespaces: []string{"openshift-etcd", "openshift-kube-apiserver"}, Healthy: true, HealthMessage: "simulated"}}
	worker := &capture.Worker{ClusterID: demoSeedCluster, Host: host, JS: d.js, WorkDir: filepath.Join(dir, "capture"), Telemetry: telemetry.Telemetry{Logger: d.log}}
	wg.Go(func() { _ = worker.Run(ctx) })
	svc := seedbuild.New(d.js, seedbuild.Config{Telemetry: telemetry.Telemetry{Logger: d.log}, InspectTimeout: 20 * time.Second, CaptureTimeout: 20 * time.Second})
	wg.Go(func() { _ = svc.Run(ctx) })

	ref := reg.Host() + "/telco/sno-seed:4.16.9"
	wrong, err := writeAuthFile(filepath.Join(dir, "wrong-auth.json"), reg.Host(), reg.User, "guess")
	if err != nil {
		return fail(err)
	}
	rec, err := d.requestSeed(ctx, "demo-seed-wrong-password", ref, wrong)
	if err != nil {
		return fail(err)
	}
	if rec.State != state.SeedBuildFailed || rec.Reason != seedbuild.ReasonUnauthorized {
		return fail(fmt.Errorf("seed build with a wrong password: want Failed %s, got %s %s: %s", seedbuild.ReasonUnauthorized, rec.State, rec.Reason, rec.Message))
	}
	d.say("seed", "seed build with a wrong password refused before the seed cluster was touched (%d quiesces, workloads running: %v): %s",
		host.Quiesces(), host.Running(), rec.Message)
	good, err := writeAuthFile(filepath.Join(dir, "auth.json"), reg.Host(), reg.User, reg.Pass)
	if err != nil {
		return fail(err)
	}
	d.seedAuth = []seedimage.Option{seedimage.WithAuthFile(good)}
	rec, err = d.requestSeed(ctx, "demo-seed", ref, good)
	if err != nil {
		return fail(err)
	}
	if rec.State != state.SeedBuildCompleted || rec.Result == nil {
		return fail(fmt.Errorf("seed build: %s %s: %s", rec.State, rec.Reason, rec.Message))
	}
	r := rec.Result
	d.say("seed", "seed-builder captured %s (workloads quiesced once, running again: %v) and pushed %s@%s: %d layers, %d bytes, %d images, in %dms",
		demoSeedCluster, host.Running(), r.SeedImage, r.Digest, r.Layers, r.SizeBytes, r.Images, r.DurationMs)
	sum, err := seedimage.Inspect(ctx, ref+"@"+r.Digest, d.seedAuth...)
	if err != nil {
		return fail(err)
	}
	d.say("seed", "inspected from manifest and config only: version %s, %d precache images, stateroot %s",
		sum.Info.Version, len(sum.Images), sum.Info.Stateroot)
	return sum, stop, nil
}

// requestSeed publishes a seed build request and waits for its record to end.
func (d *demo) requestSeed(ctx context.Context, id, ref, authFile string) (state.SeedBuild, error) {
	var rec state.SeedBuild
	kv, err := d.js.KeyValue(ctx, bus.BucketSeedBuilds)
	if err != nil {
		return rec, err
	}
	w, err := kv.Watch(ctx, id)
	if err != nil {
		return rec, err
	}
	defer w.Stop()
	req := events.SeedBuildRequested{BuildID: id, ClusterID: demoSeedCluster, SeedImage: ref,
		PushSecretRef: events.SecretRef{Kind: events.SecretKindDockerConfigFile, Name: "push", Path: authFile}}
	e, err := events.New(demoSource, demoSeedCluster, req)
	if err != nil {
		return rec, err
	}
	subject, err := events.SubjectFor(req.EventType(), demoSeedCluster)
	if err != nil {
		return rec, err
	}
	if _, err := d.pub.Publish(ctx, subject, e); err != nil {
		return rec, err
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return rec, ctx.Err()
		case <-timeout:
			return rec, fmt.Errorf("seed build %s: no result within 30s (last: %s %s)", id, rec.State, rec.Phase)
		case en := <-w.Updates():
			if en == nil || en.Operation() != jetstream.KeyValuePut {
				continue
			}
			if err := json.Unmarshal(en.Value(), &rec); err != nil {
				return rec, fmt.Errorf("build record %s: %w", id, err)
			}
			if rec.State != state.SeedBuildRunning {
				return rec, nil
			}
		}
	}
}

// waitIdle waits for a cluster's agent to report Idle.
func (d *demo) waitIdle(ctx context.Context, cluster string) error {
	w, err := d.status.Watch(ctx, cluster)
	if err != nil {
		return err
	}
	defer w.Stop()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout:
			return fmt.Errorf("cluster %s did not register within 20s", cluster)
		case en := <-w.Updates():
			if en == nil {
				continue
			}
			var st state.Status
			if json.Unmarshal(en.Value(), &st) == nil && st.Stage == stages.Idle {
				return nil
			}
		}
	}
}

func writeTree(files map[string]string) error {
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeAuthFile writes a docker config.json with one registry's credentials.
func writeAuthFile(path, host, user, pass string) (string, error) {
	b, err := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, b, 0o600)
}
