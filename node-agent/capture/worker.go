package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
)

// Worker serves a seed cluster's capture tasks (ibu.task.seed-capture.<cluster>).
type Worker struct {
	ClusterID string
	Host      Host
	JS        jetstream.JetStream
	// WorkDir holds an exported repository while a capture runs.
	WorkDir string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Run consumes capture tasks until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	if w.Now == nil {
		w.Now = time.Now
	}
	subject, err := events.TaskSubject(events.ServiceSeedCapture, w.ClusterID)
	if err != nil {
		return err
	}
	pub := bus.NewPublisher(w.JS)
	sub, err := bus.Consume(ctx, w.JS, bus.StreamTasks, "seed-capture-"+w.ClusterID,
		func(ctx context.Context, e cloudevents.Event) error { return w.handle(ctx, pub, e) },
		bus.ConsumeFilterSubjects(subject), bus.ConsumeService(events.ServiceNodeAgent),
		bus.ConsumeLogger(w.Logger), bus.ConsumeMaxDeliver(3), bus.ConsumeAckWait(30*time.Second),
		bus.ConsumeInProgress(10*time.Second), bus.ConsumeBatch(1))
	if err != nil {
		return fmt.Errorf("consume capture tasks: %w", err)
	}
	<-ctx.Done()
	sub.Stop()
	return nil
}

func (w *Worker) handle(ctx context.Context, pub *bus.Publisher, e cloudevents.Event) error {
	req, err := events.DataAs[events.SeedCaptureRequested](e)
	if err != nil {
		return bus.Permanent(err)
	}
	if req.ClusterID != w.ClusterID {
		return bus.Permanent(fmt.Errorf("capture task for cluster %s reached %s", req.ClusterID, w.ClusterID))
	}
	log := w.Logger.With("build", req.BuildID, "mode", req.Mode)
	start := w.Now()
	var answer events.Data
	switch req.Mode {
	case events.CaptureInspect:
		inv, _, err := Inventory(ctx, w.Host)
		answer = w.answer(req, inv, Result{}, err, start)
	case events.CaptureFull:
		obs, err := w.JS.ObjectStore(ctx, req.Bucket)
		if err != nil {
			answer = w.answer(req, events.SeedHostInventory{}, Result{}, &Error{Reason: ReasonUploadFailed, WorkloadsRunning: true,
				Err: fmt.Errorf("object store %s: %w", req.Bucket, err)}, start)
			break
		}
		log.Info("capturing the seed host")
		comp, cerr := seedimage.ParseCompression(req.Compression)
		if cerr != nil {
			return bus.Permanent(cerr)
		}
		res, err := Run(ctx, w.Host, obs, Request{BuildID: req.BuildID, WorkDir: w.WorkDir, Now: w.Now(), Compression: comp})
		answer = w.answer(req, res.Inventory, res, err, start)
		if err == nil {
			log.Info("captured the seed host", "quiesced", res.Quiesced, "artifacts", len(res.Artifacts))
		}
	default:
		return bus.Permanent(fmt.Errorf("unknown capture mode %q", req.Mode))
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the task is delivered again
	}
	out, err := events.New("/clusters/"+w.ClusterID+"/node-agent", w.ClusterID, answer)
	if err != nil {
		return bus.Permanent(err)
	}
	out.SetID(fmt.Sprintf("%s.%s.%s.%s", w.ClusterID, req.BuildID, req.Mode, e.ID()))
	subject, err := events.SubjectFor(answer.EventType(), w.ClusterID)
	if err != nil {
		return bus.Permanent(err)
	}
	if _, err := pub.Publish(ctx, subject, out); err != nil {
		return fmt.Errorf("answer capture task: %w", err)
	}
	return nil
}

func (w *Worker) answer(req events.SeedCaptureRequested, inv events.SeedHostInventory, res Result, err error, start time.Time) events.Data {
	if err != nil {
		ce := &Error{Reason: ReasonExportFailed, WorkloadsRunning: true, Err: err}
		errors.As(err, &ce)
		w.Logger.Warn("capture failed", "build", req.BuildID, "reason", ce.Reason, "error", err, "workloadsRunning", ce.WorkloadsRunning)
		return events.SeedCaptureFailed{ClusterID: w.ClusterID, BuildID: req.BuildID, Mode: req.Mode,
			Reason: ce.Reason, Message: events.ClipMarked(err.Error(), 4000), WorkloadsRunning: ce.WorkloadsRunning}
	}
	return events.SeedCaptureCompleted{ClusterID: w.ClusterID, BuildID: req.BuildID, Mode: req.Mode, Inventory: inv,
		Artifacts: res.Artifacts, InfoObject: res.InfoObject, QuiescedMs: res.Quiesced.Milliseconds(),
		DurationMs: w.Now().Sub(start).Milliseconds()}
}
