package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"ibu.dev/node-agent/host"
	"ibu.dev/shared/events"
	"ibu.dev/shared/pullbudget"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// precache pulls the images the new release needs that the node lacks,
// with bounded parallelism, per-image retries, a slot of the fleet's pull
// budget per pull, and typed progress (bytes, rate, ETA). The list comes
// from the precache service's pull plan when one serves this cluster, else
// from the seed's list minus the node's inventory. Before pulling, the
// list of images this Prep is about to add is written beside the seed, so
// that an abort removes exactly what Prep pulled, even after a crash
// mid-pull. A restarted Prep asks the store again: images it has are
// skipped, and a store that keeps blobs does not fetch finished ones.
func (a *Agent) precache(ctx context.Context, r *runState) (any, error) {
	seed, err := r.seed()
	if err != nil {
		return nil, err
	}
	have, err := a.d.Images.Inventory(ctx)
	if err != nil {
		return nil, fmt.Errorf("image inventory: %w", err)
	}
	present := map[string]bool{}
	for _, img := range have {
		present[img] = true
	}
	job := pullJob{concurrency: a.cfg.PrecacheConcurrency, bestEffort: a.cfg.PrecacheBestEffort}
	if a.cfg.Services.Precache {
		plan, err := a.savedPlan(r)
		if err != nil {
			if plan, err = a.askPrecachePlan(ctx, r, have); err != nil {
				return nil, err
			}
		}
		for _, img := range plan.Images {
			if !present[img.Image] {
				job.images = append(job.images, img)
			}
		}
		if plan.Concurrency > 0 {
			job.concurrency = plan.Concurrency
		}
		job.bestEffort = plan.BestEffort
		job.maxBytesPerSec = plan.MaxBytesPerSec
	} else {
		for _, img := range slices.Compact(slices.Clone(seed.Images)) {
			if !present[img] {
				job.images = append(job.images, events.PullImage{Image: img})
			}
		}
	}
	todo := make([]string, len(job.images))
	for i, img := range job.images {
		todo[i] = img.Image
	}
	if err := a.recordPulls(r, todo); err != nil {
		return nil, err
	}
	for _, img := range seed.Images {
		if present[img] {
			job.already++
		}
	}
	return a.pull(ctx, r, job)
}

// pullsFile lists, in the seed's work directory, the images Prep adds.
const pullsFile = "precache-pulls.json"

func (a *Agent) recordPulls(r *runState, todo []string) error {
	dir := a.workDir(r)
	var prev []string
	if b, err := os.ReadFile(filepath.Join(dir, pullsFile)); err == nil {
		_ = json.Unmarshal(b, &prev)
	}
	// A resumed Prep keeps the images an earlier attempt added.
	all := slices.Compact(slices.Sorted(slices.Values(append(prev, todo...))))
	b, err := json.Marshal(all)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seed work directory: %w", err)
	}
	tmp := filepath.Join(dir, pullsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("record precache pulls: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, pullsFile))
}

// planFile keeps the service's pull plan beside the seed, so that an agent
// restarted mid-pull finds the plan it pulls by without asking again (and
// without depending on the answer still being in the event stream).
const planFile = "precache-plan.json"

func (a *Agent) savedPlan(r *runState) (events.PrecachePlanned, error) {
	var p events.PrecachePlanned
	b, err := os.ReadFile(filepath.Join(a.workDir(r), planFile))
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("saved precache plan: %w", err)
	}
	if p.Generation != r.run.Generation {
		return p, fmt.Errorf("saved precache plan is for generation %d", p.Generation)
	}
	return p, nil
}

func (a *Agent) savePlan(r *runState, p events.PrecachePlanned) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	dir := a.workDir(r)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("seed work directory: %w", err)
	}
	tmp := filepath.Join(dir, planFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("save precache plan: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, planFile))
}

// askPrecachePlan sends the precache request (with the node's inventory,
// so the service needs no second round trip), waits for the service's
// answer, its pull plan or its failure (a seed it cannot read), and saves
// the plan beside the seed.
func (a *Agent) askPrecachePlan(ctx context.Context, r *runState, have []string) (events.PrecachePlanned, error) {
	d := r.in.Desired
	plan, err := askService[events.PrecachePlanned](ctx, a, r, stepPrecache, events.PrecacheRequested{
		ClusterID: a.cfg.ClusterID, PlanID: d.PlanID, Generation: r.run.Generation,
		SeedImage: d.SeedImage, PullSecretRef: d.PullSecretRef, PresentImages: have,
		Concurrency: a.cfg.PrecacheConcurrency, BestEffort: a.cfg.PrecacheBestEffort,
		RegistryMappings: a.cfg.RegistryMappings})
	if err != nil {
		return plan, fmt.Errorf("precache: %w", err)
	}
	if err := a.savePlan(r, plan); err != nil {
		return plan, err
	}
	return plan, nil
}

// pullJob is what precache pulls and how.
type pullJob struct {
	images      []events.PullImage
	already     int // needed images the node had before
	concurrency int
	bestEffort  bool
	// maxBytesPerSec caps the node's download rate (0: none). Stores that
	// report progress as bytes arrive are paced by it; the CRI is not.
	maxBytesPerSec int64
}

// precacheOutput is the Precache step's journaled result.
type precacheOutput struct {
	state.Precache
	FailedImages []events.ImageFailure `json:"failedImages,omitempty"`
}

// pull fetches the job's images, reporting progress at a bounded rate.
func (a *Agent) pull(ctx context.Context, r *runState, job pullJob) (any, error) {
	pool, err := pullbudget.Open(ctx, a.d.JS, a.cfg.ClusterID, pullbudget.WithLogger(a.log))
	switch {
	case errors.Is(err, pullbudget.ErrNoBudget):
		pool = nil // no precache service configured a budget: pulls are not limited fleet-wide
	case err != nil:
		return nil, err
	default:
		defer pool.Close()
	}
	tr := newTracker(a.d.Now(), job)
	report := func() {
		p, changed := tr.snapshot(a.d.Now())
		if !changed {
			return
		}
		msg := "Precache: " + p.Summary()
		now := a.d.Now().UTC()
		_, _ = a.updateStatus(ctx, func(s *state.Status, _ bool) {
			s.Precache = &p
			s.Message = msg
			if s.Stage == stages.Prep && s.State == stages.InProgress {
				s.Conditions = stages.ConditionsFor(s.Conditions, s.Position, msg, now)
			}
		})
		ev := events.PrecacheProgress{ClusterID: a.cfg.ClusterID, PlanID: r.run.PlanID, Generation: r.run.Generation,
			Total: p.Total, Pulled: p.Pulled, Failed: p.Failed, AlreadyPresent: job.already,
			BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, RateBytesPerSec: int64(p.RateBytesPerSec)}
		if p.ETASeconds > 0 {
			eta := p.ETASeconds
			ev.ETASeconds = &eta
		}
		_ = a.emit(ctx, ev)
	}
	report()
	// Progress at a bounded rate: one status write and one event per
	// interval at most, however many images finish in it.
	stopReports := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		t := time.NewTicker(a.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-stopReports:
				return
			case <-t.C:
				report()
			}
		}
	}()

	progress := host.ProgressFunc(tr.add)
	if job.maxBytesPerSec > 0 {
		pace := &pacer{rate: float64(job.maxBytesPerSec)}
		progress = func(n int64) {
			tr.add(n)
			pace.wait(ctx, n) // blocking here slows the download that reports
		}
	}
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, max(job.concurrency, 1))
	)
	for _, img := range job.images {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := a.pullOne(ctx, img, pool, progress)
			a.meters.imagePulled(ctx, n, err)
			tr.finished(img, n, err)
		})
	}
	wg.Wait()
	close(stopReports)
	<-reported
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	report()
	p, _ := tr.snapshot(a.d.Now())
	failures := tr.failures()
	out := precacheOutput{Precache: p, FailedImages: failures}
	if len(failures) > 0 && !job.bestEffort {
		_ = a.emit(ctx, events.PrecacheFailed{ClusterID: a.cfg.ClusterID, PlanID: r.run.PlanID, Generation: r.run.Generation,
			Reason: "ImagePullFailed", Message: fmt.Sprintf("%d of %d images failed", len(failures), p.Total), FailedImages: failures})
		return nil, fmt.Errorf("precache: %d of %d images failed: %s", len(failures), p.Total, failureList(failures))
	}
	_ = a.emit(ctx, events.PrecacheCompleted{ClusterID: a.cfg.ClusterID, PlanID: r.run.PlanID, Generation: r.run.Generation,
		Total: p.Total, Pulled: p.Pulled, Failed: p.Failed, AlreadyPresent: job.already, BytesTotal: p.BytesDone,
		DurationMs: a.d.Now().Sub(tr.start).Milliseconds(), FailedImages: failures})
	if len(failures) > 0 {
		a.log.Warn("precache completed in best-effort mode with failures", "failed", failureList(failures))
	}
	return out, nil
}

func failureList(fs []events.ImageFailure) string {
	var parts []string
	for i, f := range fs {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(fs)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s: %s)", f.Image, f.Reason, events.Clip(f.Message, 200)))
	}
	return strings.Join(parts, "; ")
}

// pullOne pulls an image, holding a slot of the fleet budget for each
// attempt (not while backing off), and retries transient failures with
// exponential backoff and jitter. A missing image or refused credentials
// fail at once.
func (a *Agent) pullOne(ctx context.Context, img events.PullImage, pool *pullbudget.Pool, progress host.ProgressFunc) (int64, error) {
	registry := ""
	if ref, err := name.ParseReference(img.Image); err == nil {
		registry = ref.Context().RegistryStr()
	}
	delay := a.cfg.PullBackoff
	for attempt := 1; ; attempt++ {
		var lease *pullbudget.Lease
		if pool != nil && registry != "" {
			l, err := pool.Acquire(ctx, registry, img.Image)
			if err != nil {
				return 0, fmt.Errorf("pull slot for %s: %w", registry, err)
			}
			lease = l
		}
		var (
			n   int64
			err error
		)
		if pp, ok := a.d.Images.(host.ProgressPuller); ok {
			n, err = pp.PullWithProgress(ctx, img.Image, progress)
		} else if n, err = a.d.Images.Pull(ctx, img.Image); err == nil {
			progress(n)
		}
		if rerr := lease.Release(context.WithoutCancel(ctx)); rerr != nil {
			a.log.Warn("release pull slot", "error", rerr)
		}
		if err == nil {
			return n, nil
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if errors.Is(err, host.ErrImageNotFound) || errors.Is(err, host.ErrImageUnauthorized) || attempt >= a.cfg.PullAttempts {
			return n, fmt.Errorf("attempt %d: %w", attempt, err)
		}
		wait := time.Duration(float64(delay) * (0.8 + 0.4*rand.Float64()))
		a.log.Info("image pull failed; retrying", "image", img.Image, "attempt", attempt, "in", wait.Round(time.Millisecond), "error", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return n, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, time.Minute)
	}
}

func failureReason(err error) string {
	switch {
	case errors.Is(err, host.ErrImageNotFound):
		return "NotFound"
	case errors.Is(err, host.ErrImageUnauthorized):
		return "Unauthorized"
	}
	return "PullFailed"
}

// tracker accumulates progress from concurrent pulls.
type tracker struct {
	mu          sync.Mutex
	start       time.Time
	p           state.Precache
	transferred int64           // bytes that crossed the wire
	claimed     int64           // distinct planned bytes of finished images
	claimedBy   map[string]bool // layer digests counted in claimed
	fails       []events.ImageFailure
	changed     bool
}

func newTracker(now time.Time, job pullJob) *tracker {
	t := &tracker{start: now, claimedBy: map[string]bool{}, changed: true}
	t.p.Total = job.already + len(job.images)
	t.p.Pulled = job.already
	seen := map[string]bool{}
	for _, img := range job.images {
		if len(img.Layers) == 0 {
			t.p.BytesTotal += img.SizeBytes
			continue
		}
		for _, l := range img.Layers {
			if !seen[l.Digest] {
				seen[l.Digest] = true
				t.p.BytesTotal += l.SizeBytes
			}
		}
		t.p.BytesTotal += configBytes(img)
	}
	return t
}

// configBytes is the part of an image's size that is not its layers (its
// config blob).
func configBytes(img events.PullImage) int64 {
	n := img.SizeBytes
	for _, l := range img.Layers {
		n -= l.SizeBytes
	}
	return max(n, 0)
}

func (t *tracker) add(n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.transferred += n
	t.changed = true
}

func (t *tracker) finished(img events.PullImage, n int64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.changed = true
	if err != nil {
		t.p.Failed++
		t.fails = append(t.fails, events.ImageFailure{Image: img.Image, Reason: failureReason(err), Message: events.Clip(err.Error(), 500)})
		return
	}
	t.p.Pulled++
	if len(img.Layers) == 0 {
		if img.SizeBytes == 0 {
			t.p.BytesTotal += n // size unknown until now
			t.claimed += n
		} else {
			t.claimed += img.SizeBytes
		}
		return
	}
	for _, l := range img.Layers {
		if !t.claimedBy[l.Digest] {
			t.claimedBy[l.Digest] = true
			t.claimed += l.SizeBytes
		}
	}
	t.claimed += configBytes(img)
}

// snapshot returns the progress now, and whether it changed since the
// last snapshot.
func (t *tracker) snapshot(now time.Time) (state.Precache, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := t.changed
	t.changed = false
	p := t.p
	p.BytesDone = min(max(t.transferred, t.claimed), max(p.BytesTotal, t.transferred))
	if el := now.Sub(t.start).Seconds(); el > 0 {
		p.RateBytesPerSec = float64(t.transferred) / el
	}
	p.ETASeconds = 0
	if left := p.BytesTotal - p.BytesDone; left > 0 && p.RateBytesPerSec > 0 {
		p.ETASeconds = max(1, int64(float64(left)/p.RateBytesPerSec+0.5))
	}
	return p, changed
}

func (t *tracker) failures() []events.ImageFailure {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.fails)
}

// pacer spaces byte counts to a rate shared by every pull of the node.
type pacer struct {
	mu   sync.Mutex
	rate float64 // bytes per second
	next time.Time
}

func (p *pacer) wait(ctx context.Context, n int64) {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	d := p.next.Sub(now)
	p.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// seedPullSlot takes a slot of the fleet's pull budget for the seed's
// registry and returns its release; without a budget (no precache service
// set one up) or a limit for that registry, the pull is not held back.
func (a *Agent) seedPullSlot(ctx context.Context, ref string) (release func(), err error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return func() {}, nil // the pull itself reports a bad reference
	}
	pool, err := pullbudget.Open(ctx, a.d.JS, a.cfg.ClusterID, pullbudget.WithLogger(a.log))
	if errors.Is(err, pullbudget.ErrNoBudget) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	registry := r.Context().RegistryStr()
	lease, err := pool.Acquire(ctx, registry, ref)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("pull slot for %s: %w", registry, err)
	}
	return func() {
		if err := lease.Release(context.WithoutCancel(ctx)); err != nil {
			a.log.Warn("release pull slot", "error", err)
		}
		pool.Close()
	}, nil
}
