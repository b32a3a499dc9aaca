package ibuctl

import (
	"errors"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

func TestParseSecretRef(t *testing.T) {
	for _, c := range []struct {
		in   string
		want events.SecretRef
		err  string
	}{
		{in: "dockerconfig-file:push:/run/secrets/push.json", want: events.SecretRef{Kind: events.SecretKindDockerConfigFile, Name: "push", Path: "/run/secrets/push.json"}},
		{in: "kubernetes-secret:seed-push:ibu-system", want: events.SecretRef{Kind: events.SecretKindKubernetes, Name: "seed-push", Namespace: "ibu-system"}},
		{in: "secret:seed-push", want: events.SecretRef{Kind: events.SecretKindKubernetes, Name: "seed-push"}},
		{in: "dockerconfig-file:push:auth.json", err: "absolute path"},
		{in: "seed-push", err: "--push-secret"},
	} {
		got, err := parseSecretRef(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestSeedBuildAndStatus(t *testing.T) {
	h := startTestHub(t)
	run := h.start("seed", "build", "--cluster", "seed-lab", "--image", "registry.example.com/seeds/sno:4.16.3",
		"--push-secret", "kubernetes-secret:seed-push:ibu-system", "--build-id", "b1", "--wait", "15s")
	e := h.takeRequest()
	req, err := events.DataAs[events.SeedBuildRequested](e)
	if err != nil {
		t.Fatal(err)
	}
	if req.BuildID != "b1" || req.ClusterID != "seed-lab" || req.PushSecretRef.Name != "seed-push" {
		t.Fatalf("request %+v", req)
	}
	now := time.Now().UTC()
	h.put(bus.BucketSeedBuilds, "b1", state.SeedBuild{BuildID: "b1", ClusterID: "seed-lab", SeedImage: req.SeedImage,
		State: state.SeedBuildRunning, Phase: events.SeedPushing, Layer: "ostree", BytesDone: 50, BytesTotal: 200, Started: now, Updated: now})
	h.put(bus.BucketSeedBuilds, "b1", state.SeedBuild{BuildID: "b1", ClusterID: "seed-lab", SeedImage: req.SeedImage,
		State: state.SeedBuildFailed, Phase: events.SeedValidating, Reason: "Unauthorized", Message: "unauthorized: 401", Started: now, Updated: now})
	h.put(bus.BucketSeedBuilds, "lock.seed-lab", "b1")
	err = run.wait(t)
	if err == nil || !strings.Contains(err.Error(), "Unauthorized") || errors.Is(err, ErrUsage) {
		t.Errorf("seed build --wait: %v", err)
	}
	if out := run.out.String(); !strings.Contains(out, "b1 Running Pushing ostree 50/200 bytes (25%)") {
		t.Errorf("progress not shown:\n%s", out)
	}
	out, _, err := h.run(t.Context(), "seed", "status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "b1") || !strings.Contains(out, "Failed") || !strings.Contains(out, "Unauthorized: unauthorized: 401") || strings.Contains(out, "lock.") {
		t.Errorf("seed status:\n%s", out)
	}
	if _, _, err := h.run(t.Context(), "seed", "build", "--cluster", "x"); !errors.Is(err, ErrUsage) {
		t.Errorf("missing flags: %v", err)
	}
	if out, _, err := h.run(t.Context(), "seed", "-h"); err != nil || !strings.Contains(out, "ibuctl seed status") {
		t.Errorf("seed -h: %q, %v", out, err)
	}
}
