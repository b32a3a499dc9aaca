package cri_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/host/cri"
	"ibu.dev/shared/seedimage/seedsim"
	"ibu.dev/shared/testkit/registrytest"
)

// endpoint returns the CRI socket to test against: $IBU_CRI_ENDPOINT when
// set (a node's CRI-O or containerd), else a containerd started for this
// test with its CRI plugin, reaching the loopback registry over HTTP.
func endpoint(t *testing.T, registryHost string) string {
	t.Helper()
	if ep := os.Getenv("IBU_CRI_ENDPOINT"); ep != "" {
		return ep
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Fatal("containerd not found: install Debian's containerd (apt-get install containerd), or set IBU_CRI_ENDPOINT to a CRI socket")
	}
	if os.Geteuid() != 0 {
		t.Fatal("containerd needs root to run its snapshotter: run the test as root, or set IBU_CRI_ENDPOINT to a CRI socket")
	}
	dir, err := os.MkdirTemp("", "ibu-ctrd-") // short: a unix socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.invalid/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[4]q
    conf_dir = %[4]q
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.%[5]q]
    endpoint = ["http://%[5]s"]
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, filepath.Join(dir, "cni"), registryHost)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd exited (%v):\n%s", err, tail(string(b), 3000))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("containerd did not open %s within 20s:\n%s", sock, tail(string(b), 3000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "unix://" + sock
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestCRIImageStoreAgainstContainerd(t *testing.T) {
	reg := registrytest.Start(t)
	set, err := seedsim.ImageSet{Count: 3, BaseSize: 64 << 10, OwnBytes: 16 << 10, Seed: 11}.Push(t.Context(), reg.Host, "ocp", nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := cri.New(endpoint(t, reg.Host), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range set.Images {
		n, err := store.Pull(t.Context(), img)
		if err != nil {
			t.Fatalf("pull %s: %v", img, err)
		}
		if n <= 0 {
			t.Errorf("pull %s reported %d bytes", img, n)
		}
	}
	inv, err := store.Inventory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range set.Images {
		if !slices.Contains(inv, img) {
			t.Errorf("inventory lacks %s: %v", img, inv)
		}
	}
	// Present: no second pull, no bytes.
	before := len(reg.BlobGets())
	if n, err := store.Pull(t.Context(), set.Images[0]); err != nil || n != 0 {
		t.Errorf("second pull: %d bytes, %v", n, err)
	}
	if after := len(reg.BlobGets()); after != before {
		t.Errorf("second pull fetched %d blobs", after-before)
	}
	// The base layer, shared by the three images, crossed the wire once.
	counts := map[string]int{}
	for _, d := range reg.BlobGets() {
		counts[d]++
	}
	for d, c := range counts {
		if c > 1 {
			t.Errorf("blob %s fetched %d times", d, c)
		}
	}
	missing := reg.Host + "/ocp/gone@sha256:" + strings.Repeat("e", 64)
	if _, err := store.Pull(t.Context(), missing); !errors.Is(err, host.ErrImageNotFound) {
		t.Errorf("pull of a missing image: %v, want ErrImageNotFound", err)
	}
	if err := store.Remove(t.Context(), set.Images[1]); err != nil {
		t.Fatal(err)
	}
	if err := store.Remove(t.Context(), set.Images[1]); err != nil {
		t.Errorf("removing an absent image: %v", err)
	}
	inv, _ = store.Inventory(t.Context())
	if slices.Contains(inv, set.Images[1]) {
		t.Errorf("removed image still listed: %v", inv)
	}
}
