package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"ibu.dev/node-agent/seedapply"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/state"
)

// Prep step names.
const (
	stepInspectSeed   = "InspectSeed"
	stepCheckCompat   = "CheckCompatibility"
	stepPullSeed      = "PullSeed"
	stepImportCommit  = "ImportCommit"
	stepDeploy        = "DeployStateroot"
	stepApplyVar      = "ApplyVar"
	stepApplyEtc      = "ApplyEtc"
	stepPrecache      = "Precache"
	phaseStateroot    = "Stateroot"
	phasePrecache     = "Precache"
	seedLayoutDirName = "seed-layout"
)

func (a *Agent) prepSteps() []step {
	return []step{
		{stepPrepHealth, phaseStateroot, a.healthGate(stepPrepHealth)},
		{stepInspectSeed, phaseStateroot, a.inspectSeed},
		{stepCheckCompat, phaseStateroot, a.checkCompat},
		{stepValidateOADP, phaseStateroot, a.validateOADP},
		{stepPullSeed, phaseStateroot, a.pullSeed},
		{stepImportCommit, phaseStateroot, a.importCommit},
		{stepDeploy, phaseStateroot, a.deploy},
		{stepApplyVar, phaseStateroot, a.applyVar},
		{stepApplyEtc, phaseStateroot, a.applyEtc},
		{stepPrecache, phasePrecache, a.precache},
	}
}

// inspectOutput is what InspectSeed learns from the manifest and config
// alone, before anything is pulled.
type inspectOutput struct {
	Ref    string             `json:"ref"` // pinned by digest: every later step reads exactly this seed
	Info   seedimage.SeedInfo `json:"info"`
	Images []string           `json:"images"`
}

func (a *Agent) inspectSeed(ctx context.Context, r *runState) (any, error) {
	d := r.in.Desired
	sum, err := seedimage.Inspect(ctx, d.SeedImage, a.cfg.SeedOptions...)
	if err != nil {
		return nil, fmt.Errorf("inspect seed %s: %w", d.SeedImage, err)
	}
	if d.SeedVersion != "" && sum.Info.Version != d.SeedVersion {
		return nil, fmt.Errorf("seed %s carries version %s, the plan asked for %s", d.SeedImage, sum.Info.Version, d.SeedVersion)
	}
	if sum.Info.Stateroot == r.in.OldStateroot {
		return nil, fmt.Errorf("seed stateroot %q is the running stateroot", sum.Info.Stateroot)
	}
	if _, err := a.updateStatus(ctx, func(s *state.Status, _ bool) { s.NewStateroot = sum.Info.Stateroot }); err != nil {
		return nil, err
	}
	return inspectOutput{Ref: sum.Ref, Info: sum.Info, Images: sum.Images}, nil
}

func (r *runState) seed() (inspectOutput, error) {
	var out inspectOutput
	if err := r.output(stepInspectSeed, &out); err != nil {
		return out, fmt.Errorf("seed inspected earlier: %w", err)
	}
	return out, nil
}

func (a *Agent) checkCompat(ctx context.Context, r *runState) (any, error) {
	seed, err := r.seed()
	if err != nil {
		return nil, err
	}
	booted, err := a.d.Stateroots.Booted(ctx)
	if err != nil {
		return nil, fmt.Errorf("read booted stateroot: %w", err)
	}
	ci := seedimage.ClusterInfo{Version: a.version(booted), Fingerprint: a.cfg.Fingerprint}
	if err := seedimage.Compatible(seed.Info, ci); err != nil {
		return nil, err
	}
	return nil, nil
}

// pullOutput locates the seed's layers and ostree repository on disk.
type pullOutput struct {
	Layout  string `json:"layout"`
	RepoDir string `json:"repoDir"`
}

func (a *Agent) workDir(r *runState) string {
	return filepath.Join(a.cfg.WorkDir, "seed-"+r.in.SeedVersion)
}

// pullSeed copies the seed into an OCI layout on the host (only the blobs
// not already there, digests checked), verifies it, and extracts the
// ostree repository.
func (a *Agent) pullSeed(ctx context.Context, r *runState) (any, error) {
	seed, err := r.seed()
	if err != nil {
		return nil, err
	}
	remote, err := seedimage.Pull(ctx, seed.Ref, a.cfg.SeedOptions...)
	if err != nil {
		return nil, fmt.Errorf("pull seed %s: %w", seed.Ref, err)
	}
	dir := a.workDir(r)
	layout := filepath.Join(dir, seedLayoutDirName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seed work directory: %w", err)
	}
	if err := seedimage.WriteLayout(layout, remote.Image, "seed"); err != nil {
		return nil, fmt.Errorf("store seed %s: %w", seed.Ref, err)
	}
	// No separate Verify pass over the layers: WriteLayout checked every
	// blob it fetched against its digest, ReadLayout checks the labels and
	// layer roles, and each extraction below and in ApplyVar/ApplyEtc checks
	// the uncompressed bytes against the config's diff IDs — so a layer is
	// read once instead of twice (the Prep benchmark measured the second
	// read at a quarter of Prep's time).
	local, err := seedimage.ReadLayout(layout, "seed")
	if err != nil {
		return nil, err
	}
	repo, err := seedapply.ExtractOstree(ctx, local, dir)
	if err != nil {
		return nil, err
	}
	return pullOutput{Layout: layout, RepoDir: repo}, nil
}

func (r *runState) pulled() (*seedimage.Seed, pullOutput, error) {
	var out pullOutput
	if err := r.output(stepPullSeed, &out); err != nil {
		return nil, out, fmt.Errorf("seed pulled earlier: %w", err)
	}
	s, err := seedimage.ReadLayout(out.Layout, "seed")
	return s, out, err
}

func (a *Agent) importCommit(ctx context.Context, r *runState) (any, error) {
	seed, err := r.seed()
	if err != nil {
		return nil, err
	}
	_, out, err := r.pulled()
	if err != nil {
		return nil, err
	}
	return nil, a.d.Stateroots.Import(ctx, out.RepoDir, seed.Info.OstreeCommit, seed.Info.Stateroot)
}

func (a *Agent) deploy(ctx context.Context, r *runState) (any, error) {
	seed, err := r.seed()
	if err != nil {
		return nil, err
	}
	kargs := slices.Concat(a.cfg.KernelArgs, seed.Info.KernelArgs)
	return a.d.Stateroots.Deploy(ctx, seed.Info.Stateroot, seed.Info.OstreeCommit, kargs)
}

// laid returns what ApplyVar and ApplyEtc lay: the pulled seed, and the
// new stateroot's deployment root and /var.
func (a *Agent) laid(ctx context.Context, r *runState) (*seedimage.Seed, string, string, error) {
	seed, err := r.seed()
	if err != nil {
		return nil, "", "", err
	}
	s, _, err := r.pulled()
	if err != nil {
		return nil, "", "", err
	}
	root, varDir, err := a.d.Stateroots.Paths(ctx, seed.Info.Stateroot)
	return s, root, varDir, err
}

func (a *Agent) applyVar(ctx context.Context, r *runState) (any, error) {
	s, _, varDir, err := a.laid(ctx, r)
	if err != nil {
		return nil, err
	}
	return nil, seedapply.ApplyVar(ctx, s, varDir)
}

func (a *Agent) applyEtc(ctx context.Context, r *runState) (any, error) {
	s, root, _, err := a.laid(ctx, r)
	if err != nil {
		return nil, err
	}
	oldRoot, _, err := a.d.Stateroots.Paths(ctx, r.in.OldStateroot)
	if err != nil {
		return nil, err
	}
	return nil, seedapply.ApplyEtc(ctx, s, filepath.Join(root, "etc"), filepath.Join(oldRoot, "etc"), seedapply.DefaultIdentity())
}

// precache pulls the images the new release needs that the node lacks,
// with bounded parallelism, reporting typed progress. The list comes from
// the precache service's pull plan when one serves this cluster, else from
// the seed's list minus the node's inventory. Before pulling, the list of
// images this Prep is about to add is written beside the seed, so that an
// abort removes exactly what Prep pulled, even after a crash mid-pull.
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
	var todo []string
	concurrency := a.cfg.PrecacheConcurrency
	if a.cfg.Services.Precache {
		plan, err := a.askPrecachePlan(ctx, r, have)
		if err != nil {
			return nil, err
		}
		for _, img := range plan.Images {
			if !present[img.Image] {
				todo = append(todo, img.Image)
			}
		}
		if plan.Concurrency > 0 {
			concurrency = plan.Concurrency
		}
	} else {
		for _, img := range seed.Images {
			if !present[img] {
				todo = append(todo, img)
			}
		}
	}
	if err := a.recordPulls(r, todo); err != nil {
		return nil, err
	}
	already := 0
	for _, img := range seed.Images {
		if present[img] {
			already++
		}
	}
	return a.pull(ctx, r, already, todo, concurrency)
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

// askPrecachePlan sends the precache request and waits for the service's
// pull plan on this cluster's node-agent task subject.
func (a *Agent) askPrecachePlan(ctx context.Context, r *runState, have []string) (events.PrecachePullRequested, error) {
	var plan events.PrecachePullRequested
	subject, err := events.TaskSubject(events.ServiceNodeAgent, a.cfg.ClusterID)
	if err != nil {
		return plan, err
	}
	cons, err := a.d.JS.CreateOrUpdateConsumer(ctx, bus.StreamTasks, jetstream.ConsumerConfig{
		Durable: "node-agent-" + a.cfg.ClusterID, FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy,
		Description: "the node agent's tasks: precache pull plans",
	})
	if err != nil {
		return plan, fmt.Errorf("consume node-agent tasks: %w", err)
	}
	d := r.in.Desired
	req := events.PrecacheRequested{ClusterID: a.cfg.ClusterID, PlanID: d.PlanID, Generation: r.run.Generation,
		SeedImage: d.SeedImage, PullSecretRef: d.PullSecretRef, PresentImages: have,
		Concurrency: a.cfg.PrecacheConcurrency}
	id := fmt.Sprintf("%s.%s.%d.%s", a.cfg.ClusterID, r.run.ID, r.run.Generation, stepPrecache)
	if err := a.emitWithID(ctx, id, req); err != nil {
		return plan, err
	}
	deadline := a.d.Now().Add(a.cfg.ServiceTimeout)
	for {
		left := deadline.Sub(a.d.Now())
		if left <= 0 {
			return plan, fmt.Errorf("no precache plan within %s", a.cfg.ServiceTimeout)
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(min(left, 5*time.Second)))
		if err != nil {
			if ctx.Err() != nil {
				return plan, ctx.Err()
			}
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return plan, fmt.Errorf("wait for the precache plan: %w", err)
		}
		e, err := bus.FromHeaders(msg.Headers(), msg.Data())
		if err != nil {
			_ = msg.Term()
			a.log.Warn("malformed task refused", "error", err)
			continue
		}
		p, err := events.DataAs[events.PrecachePullRequested](e)
		if err != nil || p.Generation != r.run.Generation {
			_ = msg.Ack() // a plan for another generation is stale
			continue
		}
		_ = msg.Ack()
		return p, nil
	}
}

// pull fetches todo; already is the number of needed images the node had.
func (a *Agent) pull(ctx context.Context, r *runState, already int, todo []string, concurrency int) (any, error) {
	start := a.d.Now()
	total := already + len(todo)
	prog := state.Precache{Total: total, Pulled: already}
	var (
		mu       sync.Mutex
		failures []events.ImageFailure
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, max(concurrency, 1))
	report := func(p state.Precache) {
		_, _ = a.updateStatus(ctx, func(s *state.Status, _ bool) { s.Precache = &p; s.Message = "Precache: " + p.String() })
		_ = a.emit(ctx, events.PrecacheProgress{ClusterID: a.cfg.ClusterID, PlanID: r.run.PlanID, Generation: r.run.Generation,
			Total: p.Total, Pulled: p.Pulled, Failed: p.Failed, AlreadyPresent: already,
			BytesDone: p.BytesDone, BytesTotal: p.BytesTotal, RateBytesPerSec: int64(p.RateBytesPerSec)})
	}
	report(prog)
	lastReport := time.Now()
	for _, img := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := a.d.Images.Pull(ctx, img)
			a.meters.imagePulled(ctx, n, err)
			mu.Lock()
			if err != nil {
				prog.Failed++
				failures = append(failures, events.ImageFailure{Image: img, Reason: "PullFailed", Message: clip(err.Error(), 500)})
			} else {
				prog.Pulled++
				prog.BytesDone += n
			}
			if el := a.d.Now().Sub(start).Seconds(); el > 0 {
				prog.RateBytesPerSec = float64(prog.BytesDone) / el
			}
			due := time.Since(lastReport) > time.Second
			if due {
				lastReport = time.Now()
			}
			p := prog
			mu.Unlock()
			if due {
				report(p)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	report(prog)
	if len(failures) > 0 {
		_ = a.emit(ctx, events.PrecacheFailed{ClusterID: a.cfg.ClusterID, PlanID: r.run.PlanID, Generation: r.run.Generation,
			Reason: "ImagePullFailed", Message: fmt.Sprintf("%d of %d images failed", len(failures), prog.Total), FailedImages: failures})
		return nil, fmt.Errorf("precache: %s: %s", prog, failures[0].Message)
	}
	_ = a.emit(ctx, events.PrecacheCompleted{ClusterID: a.cfg.ClusterID, PlanID: r.run.PlanID, Generation: r.run.Generation,
		Total: prog.Total, Pulled: prog.Pulled, AlreadyPresent: already, BytesTotal: prog.BytesDone,
		DurationMs: a.d.Now().Sub(start).Milliseconds()})
	return prog, nil
}
