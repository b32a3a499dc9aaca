package bench

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/testkit/natstest"
	"ibu.dev/shared/testkit/registrytest"
)

const (
	oldStateroot = "rhcos"
	oldVersion   = "4.14.38"
	seedVersion  = "4.16.9"
	newStateroot = "rhcos_4.16.9"
	planID       = "bench"
)

var (
	prepDone    = stages.Position{Stage: stages.Prep, State: stages.Completed}
	upgradeDone = stages.Position{Stage: stages.Upgrade, State: stages.Completed, AfterPivot: true}
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func benchFingerprint() fingerprint.Fingerprint {
	return fingerprint.Fingerprint{Architecture: "amd64", Platform: "None", NetworkType: "OVNKubernetes",
		IPFamily: fingerprint.IPv4, ContainerStorage: fingerprint.StorageSeparatePartition,
		Operators: []fingerprint.Operator{{Name: "lifecycle-agent", Version: "4.16.0"}}}
}

// hub is one embedded JetStream with ibu's streams and buckets.
type hub struct {
	url     string
	js      jetstream.JetStream
	desired jetstream.KeyValue
	status  jetstream.KeyValue
}

func startHub(tb testing.TB) *hub {
	tb.Helper()
	srv := natstest.Start(tb)
	_, js := natstest.Connect(tb, srv.URL())
	ctx := tb.Context()
	if err := bus.EnsureTopology(ctx, js); err != nil {
		tb.Fatal(err)
	}
	h := &hub{url: srv.URL(), js: js}
	var err error
	if h.desired, err = js.KeyValue(ctx, bus.BucketDesired); err != nil {
		tb.Fatal(err)
	}
	if h.status, err = js.KeyValue(ctx, bus.BucketStatus); err != nil {
		tb.Fatal(err)
	}
	return h
}

// eventCount is the number of messages in IBU_EVENTS.
func (h *hub) eventCount(tb testing.TB) uint64 {
	tb.Helper()
	s, err := h.js.Stream(tb.Context(), bus.StreamEvents)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := s.Info(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.Msgs
}

// statusWrites is the number of writes IBU_STATUS ever took (its stream's
// last sequence: the bucket keeps only a few revisions per key).
func (h *hub) statusWrites(tb testing.TB) uint64 {
	tb.Helper()
	s, err := h.js.Stream(tb.Context(), "KV_"+bus.BucketStatus)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := s.Info(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.LastSeq
}

// desire sets the desired stage of every cluster (in parallel, a few
// writers), with the seed for Prep and Upgrade.
func (h *hub) desire(tb testing.TB, clusters []string, stage stages.Stage, gen int64, seedRef string) {
	tb.Helper()
	ctx := tb.Context()
	work := make(chan string)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(16, len(clusters)) {
		wg.Go(func() {
			for id := range work {
				d := state.Desired{ClusterID: id, Stage: stage, Generation: gen, PlanID: planID}
				if stage == stages.Prep || stage == stages.Upgrade {
					d.SeedImage, d.SeedVersion = seedRef, seedVersion
				}
				b, err := state.EncodeDesired(d)
				if err == nil {
					_, err = h.desired.Put(ctx, id, b)
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("desire %s for %s: %w", stage, id, err):
					default:
					}
				}
			}
		})
	}
	for _, id := range clusters {
		work <- id
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
}

// statusView is the part of an IBU_STATUS value the board keeps.
type statusView struct {
	stages.Position
	ObservedGeneration int64  `json:"observedGeneration"`
	Message            string `json:"message"`
}

// board follows every cluster's status through one WatchAll of IBU_STATUS
// and lets a caller wait, without polling, until a set of clusters reaches
// a position.
type board struct {
	mu      sync.Mutex
	cur     map[string]statusView
	changed chan struct{} // closed and replaced on every update
	err     error
}

func watchBoard(tb testing.TB, h *hub) *board {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := h.status.WatchAll(ctx)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	bd := &board{cur: map[string]statusView{}, changed: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range w.Updates() {
			if e == nil {
				continue // initial values delivered
			}
			var v statusView
			err := json.Unmarshal(e.Value(), &v)
			bd.mu.Lock()
			if err != nil && e.Operation() == jetstream.KeyValuePut {
				bd.err = fmt.Errorf("status of %s: %w", e.Key(), err)
			} else {
				bd.cur[e.Key()] = v
			}
			close(bd.changed)
			bd.changed = make(chan struct{})
			bd.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { _ = w.Stop(); cancel(); <-done })
	return bd
}

// wait blocks until every cluster is at want having observed gen; it fails
// at once when one of them failed its stage, or after timeout, naming the
// stragglers.
func (bd *board) wait(tb testing.TB, clusters []string, want stages.Position, gen int64, timeout time.Duration) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		bd.mu.Lock()
		if bd.err != nil {
			err := bd.err
			bd.mu.Unlock()
			tb.Fatal(err)
		}
		var late []string
		for _, id := range clusters {
			v := bd.cur[id]
			if v.ObservedGeneration >= gen && v.Position == want {
				continue
			}
			if v.ObservedGeneration >= gen && v.State == stages.Failed {
				bd.mu.Unlock()
				tb.Fatalf("%s failed %s: %s", id, v.Stage, v.Message)
			}
			late = append(late, id)
		}
		ch := bd.changed
		var sample []string
		if len(late) > 0 {
			for _, id := range late[:min(5, len(late))] {
				v := bd.cur[id]
				sample = append(sample, fmt.Sprintf("%s at %s/%s gen %d (%s)", id, v.Stage, v.State, v.ObservedGeneration, v.Message))
			}
		}
		bd.mu.Unlock()
		if len(late) == 0 {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			tb.Fatalf("after %s, %d of %d clusters not at %s/%s (generation %d): %s",
				timeout, len(late), len(clusters), want.Stage, want.State, gen, strings.Join(sample, "; "))
		}
	}
}

// tarOf makes an uncompressed tar of small files; a body of "<dir>" makes
// a directory.
func tarOf(tb testing.TB, files map[string]string) []byte {
	tb.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		body := files[name]
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}
		if body == "<dir>" {
			hdr = &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, body); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// fakeImages is a precache list of n image references.
func fakeImages(n int) []string {
	var out []string
	for i := range n {
		d := sha256.Sum256(fmt.Appendf(nil, "bench img %d", i))
		out = append(out, "quay.io/ocp/art@sha256:"+hex.EncodeToString(d[:]))
	}
	return out
}

// pushSeed builds a seed of seedVersion whose ostree layer is ostreeTar
// and whose commit is commit, with a small /var and /etc, and pushes it
// to reg. It returns the reference.
func pushSeed(tb testing.TB, reg *registrytest.Registry, ostreeTar seedimage.Opener, commit string, images []string) string {
	tb.Helper()
	rel := sha256.Sum256([]byte("release " + seedVersion))
	info := seedimage.SeedInfo{
		Version: seedVersion, ReleaseImage: "quay.io/ocp/release@sha256:" + hex.EncodeToString(rel[:]),
		Fingerprint: benchFingerprint(), OstreeCommit: commit, Stateroot: newStateroot,
		BuildTime: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	}
	varTar := tarOf(tb, map[string]string{"var/lib/kubelet/seed-marker": seedVersion})
	etcTar := tarOf(tb, map[string]string{"etc/hostname": "seed-host\n", "etc/seed-release": seedVersion + "\n", "etc/motd": "seed\n"})
	img, err := seedimage.Build(info, images, seedimage.Content{
		Ostree: ostreeTar, Var: seedimage.BytesOpener(varTar), Etc: seedimage.BytesOpener(etcTar),
		EtcDeletions: []string{"/etc/motd"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	ref := reg.Ref("telco/seed:" + seedVersion)
	if _, err := seedimage.Push(tb.Context(), ref, img); err != nil {
		tb.Fatal(err)
	}
	return ref
}

// stepDurations reads the step.finished events of cluster from IBU_EVENTS
// and returns each successful step's durationMs, in order of appearance.
func stepDurations(tb testing.TB, h *hub, cluster string) ([]string, map[string]time.Duration) {
	tb.Helper()
	ctx := tb.Context()
	subject, err := events.SubjectFor(events.TypeStepFinished, cluster)
	if err != nil {
		tb.Fatal(err)
	}
	cons, err := h.js.CreateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
		FilterSubject: subject, AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: time.Minute,
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = h.js.DeleteConsumer(context.Background(), bus.StreamEvents, cons.CachedInfo().Name) }()
	info, err := cons.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var order []string
	out := map[string]time.Duration{}
	for left := int(info.NumPending); left > 0; {
		batch, err := cons.Fetch(left, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			tb.Fatal(err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			e, err := bus.FromHeaders(msg.Headers(), msg.Data())
			if err != nil {
				tb.Fatal(err)
			}
			sf, err := events.DataAs[events.StepFinished](e)
			if err != nil {
				tb.Fatal(err)
			}
			if sf.Result != events.StepSucceeded {
				continue
			}
			name := string(sf.Stage) + "/" + sf.Step
			if !slices.Contains(order, name) {
				order = append(order, name)
			}
			out[name] += time.Duration(sf.DurationMs) * time.Millisecond
		}
		if err := batch.Error(); err != nil {
			tb.Fatal(err)
		}
		if got == 0 {
			tb.Fatalf("step.finished of %s: %d events pending but none fetched", cluster, left)
		}
		left -= got
	}
	return order, out
}
