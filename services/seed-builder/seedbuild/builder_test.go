package seedbuild_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

func TestBuildPushesVerifiedSeedAndReusesLayers(t *testing.T) {
	r := newRig(t)
	ref := r.reg.Ref("seeds/sno:4.16.3")
	r.request(t, "b1", seedCluster, ref, r.authFile)
	rec := r.result(t, "b1")
	if rec.State != state.SeedBuildCompleted || rec.Result == nil {
		t.Fatalf("build: %+v", rec)
	}
	res := rec.Result
	if res.Layers != 4 || res.ReusedLayers != 0 || res.Images != 12 || len(res.LayerDigests) != 4 {
		t.Errorf("result %+v", res)
	}
	if !r.host.Running() || r.host.Quiesces() != 1 {
		t.Errorf("workloads running %v after %d quiesces", r.host.Running(), r.host.Quiesces())
	}
	seed, err := seedimage.Pull(t.Context(), ref, seedimage.WithAuthFile(r.authFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := seedimage.Verify(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	if d, _ := seed.Digest(); d.String() != res.Digest {
		t.Errorf("tag points at %s, build says %s", d, res.Digest)
	}
	vars := names(t, seed, seedimage.RoleVar)
	for _, bad := range []string{"var/log/messages", "var/lib/containers/storage/x", "var/roothome/.bash_history"} {
		if slices.Contains(vars, bad) {
			t.Errorf("var layer carries %s", bad)
		}
	}
	if !slices.Contains(vars, "var/lib/etcd/member/snap/db") {
		t.Errorf("var layer lacks etcd: %v", vars)
	}
	if etc := names(t, seed, seedimage.RoleEtc); !slices.Equal(etc, []string{"etc/hostname", "etc/kubernetes/", "etc/kubernetes/kubelet.conf"}) {
		t.Errorf("etc layer %v", etc)
	}
	md, err := seed.Metadata()
	if err != nil || !slices.Equal(md.EtcDeletions, []string{"/etc/motd"}) {
		t.Errorf("etc deletions %v, %v", md.EtcDeletions, err)
	}

	// A second seed of the same host uploads only what changed: /etc.
	write(t, map[string]string{r.host.Source.Root + "/etc/hostname": "seed-2\n"})
	r.reg.Reset()
	r.request(t, "b2", seedCluster, r.reg.Ref("seeds/sno:4.16.3-b"), r.authFile)
	rec2 := r.result(t, "b2")
	if rec2.State != state.SeedBuildCompleted {
		t.Fatalf("second build: %+v", rec2)
	}
	if rec2.Result.ReusedLayers != 3 || len(r.reg.Uploads()) != 2 { // the etc layer and the config
		t.Errorf("second build reused %d layers, uploaded %d blobs", rec2.Result.ReusedLayers, len(r.reg.Uploads()))
	}
}

func names(t *testing.T, s *seedimage.Seed, role seedimage.Role) []string {
	t.Helper()
	l, err := s.Layer(role)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return tarNames(t, rc)
}

// tarNames lists a tar's entries but the etc/ and var/ directories.
func tarNames(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "etc/" && h.Name != "var/" {
			out = append(out, h.Name)
		}
	}
}

func TestRefusals(t *testing.T) {
	r := newRig(t)
	r.register(t, "busy", stages.Position{Stage: stages.Prep, State: stages.InProgress})
	wrong := func() string { return writeAuth(t, r.reg.Host, "builder", "wrong") }
	cases := []struct {
		name, cluster, image, reason, want string
		auth                               func() string
		setup                              func()
	}{
		{name: "unknown cluster", cluster: "nowhere", reason: "UnknownCluster", want: "not registered"},
		{name: "not idle", cluster: "busy", reason: "ClusterNotIdle", want: "Prep InProgress"},
		{name: "bad password", cluster: seedCluster, reason: "Unauthorized", want: "unauthorized", auth: wrong},
		{name: "invalid reference", cluster: seedCluster, image: "Seeds/SNO:x", reason: "InvalidImageReference", want: "Seeds/SNO"},
		{name: "unreachable registry", cluster: seedCluster, image: "127.0.0.1:1/seeds/sno:x", reason: "RegistryUnreachable", want: "127.0.0.1:1"},
		{name: "missing credentials", cluster: seedCluster, reason: "CredentialsNotFound", want: "push secret",
			auth: func() string { return "/nonexistent/auth.json" }},
		{name: "hub agent", cluster: seedCluster, reason: "HubAgentPresent", want: "open-cluster-management-agent",
			setup: func() { r.host.Source.Namespaces = append(r.host.Source.Namespaces, "open-cluster-management-agent") }},
		{name: "running build", cluster: seedCluster, reason: "BuildInProgress", want: "other-build",
			setup: func() {
				kv, _ := r.js.KeyValue(context.Background(), "IBU_SEED_BUILDS")
				if _, err := kv.Put(context.Background(), state.SeedBuildLockKey(seedCluster), []byte("other-build")); err != nil {
					t.Fatal(err)
				}
				rec, _ := json.Marshal(state.SeedBuild{BuildID: "other-build", ClusterID: seedCluster, State: state.SeedBuildRunning})
				if _, err := kv.Put(context.Background(), "other-build", rec); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			saved := r.host.Source
			defer func() { r.host.Source = saved }()
			if c.setup != nil {
				c.setup()
			}
			image := c.image
			if image == "" {
				image = r.reg.Ref("seeds/sno:refused")
			}
			auth := r.authFile
			if c.auth != nil {
				auth = c.auth()
			}
			build := "r" + string(rune('a'+i))
			r.request(t, build, c.cluster, image, auth)
			rec := r.result(t, build)
			if rec.State != state.SeedBuildFailed || rec.Reason != c.reason || !strings.Contains(rec.Message, c.want) {
				t.Errorf("got %s %s %q, want Failed %s containing %q", rec.State, rec.Reason, rec.Message, c.reason, c.want)
			}
			if r.host.Quiesces() != 0 || !r.host.Running() {
				t.Errorf("the seed host was quiesced %d times, running %v", r.host.Quiesces(), r.host.Running())
			}
			if _, err := seedimage.Inspect(t.Context(), r.reg.Ref("seeds/sno:refused"), seedimage.WithAuthFile(r.authFile)); !errors.Is(err, seedimage.ErrNotFound) {
				t.Errorf("the tag exists after a refusal: %v", err)
			}
		})
	}
}

func TestZstdSeed(t *testing.T) {
	r := newRig(t)
	write(t, map[string]string{r.host.Source.VarDir + "/lib/big": strings.Repeat("seed data ", 20000)})
	for i, tag := range []string{"seeds/sno:z1", "seeds/sno:z2"} {
		build := fmt.Sprintf("z%d", i+1)
		r.reg.Reset()
		r.send(t, events.SeedBuildRequested{BuildID: build, ClusterID: seedCluster, SeedImage: r.reg.Ref(tag), Compression: "zstd",
			PushSecretRef: events.SecretRef{Kind: events.SecretKindDockerConfigFile, Name: "push", Path: r.authFile}})
		rec := r.result(t, build)
		if rec.State != state.SeedBuildCompleted {
			t.Fatalf("zstd build: %+v", rec)
		}
		if i == 1 && rec.Result.ReusedLayers != 4 {
			t.Errorf("the same content compressed again reused %d of 4 layers", rec.Result.ReusedLayers)
		}
		seed, err := seedimage.Pull(t.Context(), r.reg.Ref(tag), seedimage.WithAuthFile(r.authFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := seedimage.Verify(t.Context(), seed); err != nil {
			t.Fatal(err)
		}
		m, _ := seed.Manifest()
		if got := string(m.Layers[0].MediaType); got != "application/vnd.ibu.seed.ostree.v1.tar+zstd" {
			t.Errorf("ostree layer media type %s", got)
		}
		if vars := names(t, seed, seedimage.RoleVar); !slices.Contains(vars, "var/lib/etcd/member/snap/db") {
			t.Errorf("zstd var layer reads as %v", vars)
		}
	}
	// A re-seed to z2 chains a zstd delta.
	write(t, map[string]string{r.host.Source.VarDir + "/lib/kubelet/config.json": `{"changed":true}`})
	r.send(t, events.SeedBuildRequested{BuildID: "z3", ClusterID: seedCluster, SeedImage: r.reg.Ref("seeds/sno:z2"), Compression: "zstd",
		PushSecretRef: events.SecretRef{Kind: events.SecretKindDockerConfigFile, Name: "push", Path: r.authFile}})
	if rec := r.result(t, "z3"); rec.State != state.SeedBuildCompleted {
		t.Fatalf("zstd re-seed: %+v", rec)
	}
	chain, err := pull(t, r, r.reg.Ref("seeds/sno:z2")).Chain(seedimage.RoleVar)
	if err != nil || len(chain) != 2 || chain[1].Descriptor.MediaType != seedimage.RoleVar.MediaTypeFor(seedimage.Zstd) {
		t.Fatalf("zstd re-seed var chain %v, %v", chain, err)
	}
	if got := layerNames(t, chain[1]); !slices.Contains(got, "var/lib/kubelet/config.json") {
		t.Errorf("zstd delta %v", got)
	}
}

// Two replicas, two requests for one cluster: while the first build
// captures, the other replica refuses the second, and the seed cluster is
// quiesced once.
func TestSecondBuildWhileOneRuns(t *testing.T) {
	r := newRig(t)
	r.replica()
	inExport, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r.host.BeforeExport = func() {
		once.Do(func() { close(inExport) })
		<-release
	}
	r.request(t, "first", seedCluster, r.reg.Ref("seeds/sno:first"), r.authFile)
	select {
	case <-inExport:
	case <-time.After(30 * time.Second):
		t.Fatal("the first build never reached the capture")
	}
	r.request(t, "second", seedCluster, r.reg.Ref("seeds/sno:second"), r.authFile)
	rec := r.result(t, "second")
	close(release)
	if rec.State != state.SeedBuildFailed || rec.Reason != "BuildInProgress" || !strings.Contains(rec.Message, "first") {
		t.Errorf("second build: %s %s %q", rec.State, rec.Reason, rec.Message)
	}
	if first := r.result(t, "first"); first.State != state.SeedBuildCompleted {
		t.Errorf("first build: %+v", first)
	}
	if r.host.Quiesces() != 1 || !r.host.Running() {
		t.Errorf("%d quiesces, running %v", r.host.Quiesces(), r.host.Running())
	}
}

// A lock left by a build that ended (a crash between its result and its
// cleanup) does not block the cluster for ever.
func TestStaleLockIsTakenOver(t *testing.T) {
	r := newRig(t)
	kv, err := r.js.KeyValue(context.Background(), "IBU_SEED_BUILDS")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), state.SeedBuildLockKey(seedCluster), []byte("crashed")); err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(state.SeedBuild{BuildID: "crashed", ClusterID: seedCluster, State: state.SeedBuildFailed})
	if _, err := kv.Put(context.Background(), "crashed", rec); err != nil {
		t.Fatal(err)
	}
	r.request(t, "after", seedCluster, r.reg.Ref("seeds/sno:after"), r.authFile)
	if got := r.result(t, "after"); got.State != state.SeedBuildCompleted {
		t.Fatalf("build after a stale lock: %+v", got)
	}
	if _, err := kv.Get(context.Background(), state.SeedBuildLockKey(seedCluster)); err == nil {
		t.Error("lock kept after the build")
	}
}

func TestCaptureFailureRestartsWorkloads(t *testing.T) {
	r := newRig(t)
	r.host.FailExport = errors.New("disk full")
	r.request(t, "f1", seedCluster, r.reg.Ref("seeds/sno:broken"), r.authFile)
	rec := r.result(t, "f1")
	if rec.Reason != "CaptureFailed" || !strings.Contains(rec.Message, "disk full") || !strings.Contains(rec.Message, "workloads run again") {
		t.Errorf("record %+v", rec)
	}
	if !r.host.Running() {
		t.Error("workloads not restarted after a failed capture")
	}
	if _, err := seedimage.Inspect(t.Context(), r.reg.Ref("seeds/sno:broken"), seedimage.WithAuthFile(r.authFile)); !errors.Is(err, seedimage.ErrNotFound) {
		t.Errorf("tag after a failed build: %v", err)
	}
}
