package pullbudget_test

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ibu.dev/shared/pullbudget"
	"ibu.dev/shared/testkit/natstest"
)

func TestNoBucketMeansNoBudget(t *testing.T) {
	_, js := natstest.StartHub(t)
	if _, err := pullbudget.Open(t.Context(), js, "sno-1"); err != pullbudget.ErrNoBudget {
		t.Fatalf("Open without the bucket: %v, want ErrNoBudget", err)
	}
}

// Twelve holders in four pools (four "agents") contend for three slots:
// never more than three hold one at a time, and everyone gets one.
func TestConcurrentHoldersNeverExceedTheLimit(t *testing.T) {
	_, js := natstest.StartHub(t)
	if err := pullbudget.Ensure(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}
	const reg = "127.0.0.1:5000"
	pools := make([]*pullbudget.Pool, 4)
	for i := range pools {
		p, err := pullbudget.Open(t.Context(), js, "sno-"+string(rune('a'+i)), pullbudget.WithTTL(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	if err := pools[0].SetLimit(t.Context(), reg, 3); err != nil {
		t.Fatal(err)
	}
	var inUse, peak, done atomic.Int32
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			l, err := pools[i%4].Acquire(t.Context(), reg, "img")
			if err != nil {
				t.Error(err)
				return
			}
			n := inUse.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			// Hold the slot until the others have had a chance to contend.
			held, _ := pools[i%4].Held(t.Context(), reg)
			if len(held) > 3 {
				t.Errorf("%d slots held", len(held))
			}
			inUse.Add(-1)
			if err := l.Release(t.Context()); err != nil {
				t.Error(err)
			}
			done.Add(1)
		})
	}
	wg.Wait()
	if done.Load() != 12 || peak.Load() > 3 {
		t.Fatalf("done %d, peak %d (limit 3)", done.Load(), peak.Load())
	}
}

// A holder that died (its slot never renewed) loses the slot after a TTL.
func TestDeadHoldersSlotIsTakenOver(t *testing.T) {
	_, js := natstest.StartHub(t)
	if err := pullbudget.Ensure(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), pullbudget.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pullbudget.Open(t.Context(), js, "sno-live", pullbudget.WithTTL(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if err := p.SetLimit(t.Context(), "quay.io", 1); err != nil {
		t.Fatal(err)
	}
	dead, _ := json.Marshal(pullbudget.LeaseInfo{Holder: "sno-dead", Acquired: time.Now()})
	if _, err := kv.Put(t.Context(), "slot.quay_io.0", dead); err != nil {
		t.Fatal(err)
	}
	l, err := p.Acquire(t.Context(), "quay.io", "img")
	if err != nil {
		t.Fatal(err)
	}
	held, err := p.Held(t.Context(), "quay.io")
	if err != nil || len(held) != 1 || held[0].Holder != "sno-live" {
		t.Fatalf("held %+v, %v", held, err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if held, _ := p.Held(t.Context(), "quay.io"); len(held) != 0 {
		t.Fatalf("after release: %+v", held)
	}
}
