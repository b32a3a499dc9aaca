package seedbuild_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

// BenchmarkArtifactHop measures what the object store hop costs next to
// the push itself, for one 256 MB compressed layer: put into and get from
// IBU_SEED_ARTIFACTS (what the capture and the seed-builder add), and the
// upload into the loopback registry (what a direct push from the agent
// would do alone). Prints
//
//	hop-mbps: <object store put+get MB/s>  push-mbps: <registry upload MB/s>
func BenchmarkArtifactHop(b *testing.B) {
	const size = 256 << 20
	blob := make([]byte, size)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < size; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			blob[i+j] = byte(v >> (8 * j))
		}
	}
	_, js := natstest.StartHub(b)
	obs, err := js.ObjectStore(context.Background(), bus.ObjectStoreSeedArtifacts)
	if err != nil {
		b.Fatal(err)
	}
	reg := registrytest.Start(b)
	b.ResetTimer()
	var hop, push time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		name0 := fmt.Sprintf("hop/%d", i)
		if _, err := obs.Put(context.Background(), jetstream.ObjectMeta{Name: name0,
			Opts: &jetstream.ObjectMetaOptions{ChunkSize: 512 << 10}}, bytes.NewReader(blob)); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		r, err := obs.Get(ctx, name0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		cancel()
		hop += time.Since(start)

		blob[i] ^= 1 // a new blob each round
		start = time.Now()
		repo, err := name.NewRepository(reg.Ref("hop/bench"))
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.WriteLayer(repo, static.NewLayer(blob, types.OCILayer)); err != nil {
			b.Fatal(err)
		}
		push += time.Since(start)
	}
	b.StopTimer()
	mb := float64(size) / 1e6 * float64(b.N)
	fmt.Printf("hop-mbps: %.0f  push-mbps: %.0f\n", mb/hop.Seconds(), mb/push.Seconds())
	b.ReportMetric(mb/hop.Seconds(), "hop-MB/s")
	b.ReportMetric(mb/push.Seconds(), "push-MB/s")
}
