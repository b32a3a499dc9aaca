package seedbuild_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/state"
)

// BenchmarkSeedBuild builds and pushes a synthetic capture of about 1 GiB
// (IBU_SEED_BENCH_MB) through the whole path: the seed cluster's capture
// worker tars and gzips it into the object store, the seed-builder streams
// it into the loopback registry, reads it back and tags it. Beside it, in
// the same run, `tar | gzip > /dev/null` of the same trees. Then it changes
// 5% of the files (spread over the tree) and builds again to the same tag,
// counting the bytes uploaded. Prints
//
//	ratio: <build+push throughput / tar|gzip throughput>
//	reseed-bytes: <percent of the first seed's upload>
func BenchmarkSeedBuild(b *testing.B) {
	for _, tool := range []string{"tar", "gzip", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is not installed (apt-get install -y %s)", tool, tool)
		}
	}
	mb := 1024
	if v := os.Getenv("IBU_SEED_BENCH_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		mb = n
	}
	r := newRig(b)
	r.wait = 20 * time.Minute
	repo := filepath.Join(r.dir, "repo")
	files := synthTree(b, r, repo, int64(mb)<<20)
	r.host.RepoDir = repo
	total := treeBytes(b, repo, r.host.Source.VarDir, r.host.Source.Root)

	b.ResetTimer()
	var ratio, reseed float64
	for i := 0; i < b.N; i++ {
		var gzBytes int64
		base := timeIt(b, func() {
			// wc -c counts what gzip wrote, so the sizes compare too.
			cmd := exec.Command("bash", "-c", "tar -C / -cf - \"$0\" \"$1\" \"$2\" | gzip | wc -c", repo, r.host.Source.VarDir, r.host.Source.Root)
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("tar | gzip: %v: %s", err, out)
			}
			if gzBytes, err = strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err != nil {
				b.Fatalf("tar | gzip | wc -c: %q: %v", out, err)
			}
		})
		r.reg.Reset()
		tag := fmt.Sprintf("seeds/bench:%d", i)
		var first state.SeedBuild
		ours := timeIt(b, func() {
			r.request(b, fmt.Sprintf("bench-%d-a", i), seedCluster, r.reg.Ref(tag), r.authFile)
			first = r.result(b, fmt.Sprintf("bench-%d-a", i))
		})
		if first.State != state.SeedBuildCompleted {
			b.Fatalf("first build: %+v", first)
		}
		firstBytes := r.uploadedBytes(b, tag)
		b.Logf("first seed: %d layers, %d bytes, %v", first.Result.Layers, first.Result.SizeBytes, first.Result.LayerDigests)
		ratio = (float64(total) / ours.Seconds()) / (float64(total) / base.Seconds())
		b.Logf("tar|gzip %.1f MB/s (%s, %d MB out); capture+build+push %.1f MB/s (%s); %d MB uncompressed, %d MB pushed",
			float64(total)/1e6/base.Seconds(), base.Round(time.Millisecond), gzBytes>>20, float64(total)/1e6/ours.Seconds(), ours.Round(time.Millisecond),
			total>>20, firstBytes>>20)

		change(b, files, 0.05, i)
		r.reg.Reset()
		// The re-seed goes to the same tag, as a seed rebuilt for the
		// next release would: its content roles chain a delta onto the
		// first seed's layers.
		r.request(b, fmt.Sprintf("bench-%d-b", i), seedCluster, r.reg.Ref(tag), r.authFile)
		rec := r.result(b, fmt.Sprintf("bench-%d-b", i))
		if rec.State != state.SeedBuildCompleted {
			b.Fatalf("re-seed: %+v", rec)
		}
		reseed = 100 * float64(r.uploadedBytes(b, tag)) / float64(firstBytes)
		b.Logf("re-seed: %d layers, %d reused, %v", rec.Result.Layers, rec.Result.ReusedLayers, rec.Result.LayerDigests)
	}
	b.StopTimer()
	fmt.Printf("ratio: %.2f\n", ratio)
	fmt.Printf("reseed-bytes: %.1f\n", reseed)
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(reseed, "reseed-%")
}

func timeIt(b *testing.B, f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// synthTree writes about size bytes: 85% as files under repo (the
// exported ostree repository), 14% under /var, the rest under /etc. Half of
// each file is random, half repeats text, so gzip has work to do.
func synthTree(b *testing.B, r *rig, repo string, size int64) []string {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var files []string
	writeN := func(dir string, bytes int64, fileSize int) {
		for n := int64(0); n < bytes; n += int64(fileSize) {
			p := filepath.Join(dir, fmt.Sprintf("%02x", len(files)%256), fmt.Sprintf("f%06d", len(files)))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, content(rng, fileSize), 0o644); err != nil {
				b.Fatal(err)
			}
			files = append(files, p)
		}
	}
	write(b, map[string]string{repo + "/config": "[core]\nrepo_version=1\nmode=archive-z2\n"})
	writeN(filepath.Join(repo, "objects"), size*85/100, 256<<10)
	writeN(filepath.Join(r.host.Source.VarDir, "lib", "data"), size*14/100, 128<<10)
	writeN(filepath.Join(r.host.Source.Root, "etc", "conf"), size/100, 16<<10)
	return files
}

// content is half random bytes (like the zlib-compressed objects of an
// archive-mode ostree repository) and half text drawn at random from a
// small vocabulary (like configuration, manifests and logs), which gzip
// has to search for matches.
func content(rng *rand.Rand, n int) []byte {
	buf := make([]byte, 0, n)
	for len(buf) < n/2 {
		v := rng.Uint64()
		for j := 0; j < 8 && len(buf) < n/2; j++ {
			buf = append(buf, byte(v>>(8*j)))
		}
	}
	for len(buf) < n {
		buf = append(buf, vocabulary[rng.IntN(len(vocabulary))]...)
		buf = append(buf, ' ')
	}
	return buf[:n]
}

var vocabulary = strings.Fields(`apiVersion kind metadata name namespace labels annotations spec status
	containers image imagePullPolicy resources limits requests cpu memory volumeMounts mountPath
	readOnly env value valueFrom secretKeyRef configMapKeyRef ports containerPort protocol TCP UDP
	livenessProbe readinessProbe httpGet path port initialDelaySeconds periodSeconds nodeSelector
	tolerations effect NoSchedule operator Exists priorityClassName system-node-critical
	serviceAccountName hostNetwork true false openshift-etcd openshift-kube-apiserver quay.io
	sha256 registry release x86_64 rhcos kubelet crio ovnkube sriov ptp lifecycle-agent`)

// change rewrites a fraction of the files, chosen evenly over the tree.
func change(b *testing.B, files []string, frac float64, round int) {
	b.Helper()
	step := int(1 / frac)
	rng := rand.New(rand.NewPCG(uint64(round), 9))
	for i := round % step; i < len(files); i += step {
		fi, err := os.Stat(files[i])
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(files[i], content(rng, int(fi.Size())), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func treeBytes(b *testing.B, dirs ...string) int64 {
	b.Helper()
	var n int64
	for _, d := range dirs {
		err := filepath.Walk(d, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// uploadedBytes sums the sizes of the blobs of tag's image that the
// registry received since the last Reset.
func (r *rig) uploadedBytes(b *testing.B, tag string) int64 {
	b.Helper()
	seed, err := seedimage.Pull(context.Background(), r.reg.Ref(tag), seedimage.WithAuthFile(r.authFile))
	if err != nil {
		b.Fatal(err)
	}
	m, err := seed.Manifest()
	if err != nil {
		b.Fatal(err)
	}
	sizes := map[string]int64{m.Config.Digest.String(): m.Config.Size}
	for _, l := range m.Layers {
		sizes[l.Digest.String()] = l.Size
	}
	var n int64
	for _, d := range r.reg.Uploads() {
		n += sizes[d]
	}
	return n
}
