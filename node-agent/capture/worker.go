package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/telemetry"
)

// Worker serves a seed cluster's capture tasks (ibu.task.seed-capture.<cluster>).
type Worker struct {
	ClusterID string
	Host      Host
	JS        jetstream.JetStream
	// WorkDir holds an exported repository while a capture runs.
	WorkDir   string
	Telemetry telemetry.Telemetry
	Now       func() time.Time
}

// Run consumes capture tasks until ctx ends, and answers each through
// bus.Publisher.Answer.
func (w *Worker) Run(ctx context.Context) error {
	w.Telemetry = w.Telemetry.Resolved()
	if w.Now == nil {
		w.Now = time.Now
	}
	return bus.RunTasks(ctx, w.JS, bus.TaskWorker{
		Service: events.ServiceSeedCapture, Cluster: w.ClusterID, Source: "/clusters/" + w.ClusterID + "/node-agent",
		Handlers:  []bus.TaskHandler{bus.HandleTask(w.handle)},
		Telemetry: w.Telemetry,
		Options: []bus.ConsumeOption{bus.ConsumeService(events.ServiceNodeAgent), bus.ConsumeMaxDeliver(3),
			bus.ConsumeAckWait(30 * time.Second), bus.ConsumeInProgress(10 * time.Second), bus.ConsumeBatch(1)},
	})
}

func (w *Worker) handle(ctx context.Context, req events.SeedCaptureRequested) (events.Data, error) {
	if req.ClusterID != w.ClusterID {
		return nil, bus.Permanent(fmt.Errorf("capture task for cluster %s reached %s", req.ClusterID, w.ClusterID))
	}
	log := w.Telemetry.Logger.With("build", req.BuildID, "mode", req.Mode)
	start := w.Now()
	switch req.Mode {
	case events.CaptureInspect:
		inv, _, err := Inventory(ctx, w.Host)
		return w.answer(req, inv, Result{}, err, start), nil
	case events.CaptureFull:
		obs, err := w.JS.ObjectStore(ctx, req.Bucket)
		if err != nil {
			return w.answer(req, events.SeedHostInventory{}, Result{}, &Error{Reason: ReasonUploadFailed, WorkloadsRunning: true,
				Err: fmt.Errorf("object store %s: %w", req.Bucket, err)}, start), nil
		}
		log.Info("capturing the seed host")
		comp, cerr := seedimage.ParseCompression(req.Compression)
		if cerr != nil {
			return nil, bus.Permanent(cerr)
		}
		res, err := Run(ctx, w.Host, obs, Request{BuildID: req.BuildID, WorkDir: w.WorkDir, Now: w.Now(), Compression: comp})
		if err == nil {
			log.Info("captured the seed host", "quiesced", res.Quiesced, "artifacts", len(res.Artifacts))
		}
		return w.answer(req, res.Inventory, res, err, start), nil
	}
	return nil, bus.Permanent(fmt.Errorf("unknown capture mode %q", req.Mode))
}

func (w *Worker) answer(req events.SeedCaptureRequested, inv events.SeedHostInventory, res Result, err error, start time.Time) events.Data {
	if err != nil {
		ce := &Error{Reason: ReasonExportFailed, WorkloadsRunning: true, Err: err}
		errors.As(err, &ce)
		w.Telemetry.Logger.Warn("capture failed", "build", req.BuildID, "reason", ce.Reason, "error", err, "workloadsRunning", ce.WorkloadsRunning)
		return events.SeedCaptureFailed{ClusterID: w.ClusterID, BuildID: req.BuildID, Mode: req.Mode,
			Reason: ce.Reason, Message: events.ClipMarked(err.Error(), 4000), WorkloadsRunning: ce.WorkloadsRunning}
	}
	return events.SeedCaptureCompleted{ClusterID: w.ClusterID, BuildID: req.BuildID, Mode: req.Mode, Inventory: inv,
		Artifacts: res.Artifacts, InfoObject: res.InfoObject, QuiescedMs: res.Quiesced.Milliseconds(),
		DurationMs: w.Now().Sub(start).Milliseconds()}
}
