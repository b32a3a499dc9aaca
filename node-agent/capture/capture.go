package capture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/events"
	"ibu.dev/shared/seedimage"
)

// Reasons of a failed capture.
const (
	ReasonDescribeFailed = "DescribeFailed"
	ReasonQuiesceFailed  = "QuiesceFailed"
	ReasonExportFailed   = "ExportFailed"
	ReasonUploadFailed   = "UploadFailed"
	ReasonResumeFailed   = "ResumeFailed"
)

// Error is a failed capture: the reason and whether the workloads run.
type Error struct {
	Reason           string
	WorkloadsRunning bool
	Err              error
}

func (e *Error) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Result is a capture's outcome.
type Result struct {
	Inventory  events.SeedHostInventory
	Artifacts  []events.SeedArtifact
	InfoObject string
	Quiesced   time.Duration
}

// Inventory reports the host without changing it.
func Inventory(ctx context.Context, h Host) (events.SeedHostInventory, Source, error) {
	src, err := h.Describe(ctx)
	if err != nil {
		return events.SeedHostInventory{}, src, &Error{Reason: ReasonDescribeFailed, WorkloadsRunning: true, Err: err}
	}
	return events.SeedHostInventory{
		Version: src.Info.Version, Stateroot: src.Info.Stateroot, OstreeCommit: src.Info.OstreeCommit,
		Namespaces: src.Namespaces, CRDs: src.CRDs, PersistentVolumes: src.PersistentVolumes,
		Healthy: src.Healthy, HealthMessage: src.HealthMessage, Images: len(src.Images),
	}, src, nil
}

// Request says what to capture where.
type Request struct {
	BuildID string
	// WorkDir holds the exported repository while the capture runs.
	WorkDir string
	// Now is the seed's build time.
	Now time.Time
	// Compression of the content layers (default gzip).
	Compression seedimage.Compression
}

// Run captures the host into the object store under "<BuildID>/": it
// quiesces the workloads, exports the commit, /var and the /etc changes,
// and resumes the workloads whatever happened.
func Run(ctx context.Context, h Host, obs jetstream.ObjectStore, req Request) (Result, error) {
	if req.Compression == "" {
		req.Compression = seedimage.Gzip
	}
	inv, src, err := Inventory(ctx, h)
	if err != nil {
		return Result{}, err
	}
	res := Result{Inventory: inv}
	start := time.Now()
	if err := h.Quiesce(ctx); err != nil {
		rerr := resume(h)
		return res, &Error{Reason: ReasonQuiesceFailed, WorkloadsRunning: rerr == nil, Err: errors.Join(err, rerr)}
	}
	arts, manifest, cerr := export(ctx, h, src, obs, req)
	rerr := resume(h)
	res.Quiesced = time.Since(start)
	if cerr != nil {
		return res, &Error{Reason: reasonOf(cerr), WorkloadsRunning: rerr == nil, Err: errors.Join(cerr, rerr)}
	}
	if rerr != nil {
		return res, &Error{Reason: ReasonResumeFailed, Err: rerr}
	}
	res.Artifacts, res.InfoObject = arts, manifest
	return res, nil
}

// resume restarts the workloads even when the capture's context is done.
func resume(h Host) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := h.Resume(ctx); err != nil {
		return fmt.Errorf("restart workloads: %w", err)
	}
	return nil
}

type reasoned struct {
	reason string
	err    error
}

func (r *reasoned) Error() string { return r.err.Error() }
func (r *reasoned) Unwrap() error { return r.err }

func reasonOf(err error) string {
	if r, ok := errors.AsType[*reasoned](err); ok {
		return r.reason
	}
	return ReasonExportFailed
}

func export(ctx context.Context, h Host, src Source, obs jetstream.ObjectStore, req Request) ([]events.SeedArtifact, string, error) {
	buildID := req.BuildID
	work := filepath.Join(req.WorkDir, "capture-"+buildID)
	if err := os.RemoveAll(work); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(work)
	info := src.Info
	repo, err := h.ExportCommit(ctx, info.OstreeCommit, info.Stateroot, work)
	if err != nil {
		return nil, "", &reasoned{ReasonExportFailed, fmt.Errorf("export commit %s: %w", info.OstreeCommit, err)}
	}
	var dels []string
	producers := []struct {
		role seedimage.Role
		tar  func(io.Writer) error
	}{
		{seedimage.RoleOstree, func(w io.Writer) error { return tarRepo(w, repo, "repo") }},
		{seedimage.RoleVar, func(w io.Writer) error {
			return tarTree(w, src.VarDir, "var", func(rel string) bool { return excluded(rel, VarExcludes) })
		}},
		{seedimage.RoleEtc, func(w io.Writer) error {
			var err error
			dels, err = tarEtcChanges(w, filepath.Join(src.Root, "etc"), filepath.Join(src.Root, "usr", "etc"))
			return err
		}},
	}
	var arts []events.SeedArtifact
	for _, p := range producers {
		a, err := upload(ctx, obs, buildID+"/"+string(p.role), p.role, req.Compression, p.tar)
		if err != nil {
			return nil, "", err
		}
		arts = append(arts, a)
	}
	info.BuildTime = req.Now.UTC().Truncate(time.Second)
	images := slices.Clone(src.Images)
	slices.Sort(images)
	b, err := json.Marshal(seedimage.CaptureManifest{Info: info, Images: slices.Compact(images), EtcDeletions: dels})
	if err != nil {
		return nil, "", err
	}
	name := buildID + "/seed.json"
	if _, err := obs.PutBytes(ctx, name, b); err != nil {
		return nil, "", &reasoned{ReasonUploadFailed, fmt.Errorf("put %s: %w", name, err)}
	}
	return arts, name, nil
}

// upload streams tar -> compressor -> object store, hashing the tar (the
// layer's diff ID) and the compressed bytes (its digest) on the way: one
// pass, no temporary file.
func upload(ctx context.Context, obs jetstream.ObjectStore, name string, role seedimage.Role, c seedimage.Compression, produce func(io.Writer) error) (events.SeedArtifact, error) {
	mt := role.MediaTypeFor(c)
	if mt == "" {
		return events.SeedArtifact{}, fmt.Errorf("compression %q of the %s layer is not supported", c, role)
	}
	pr, pw := io.Pipe()
	diff, blob := newCounter(), newCounter()
	go func() {
		zw, err := compressor(io.MultiWriter(blob, pw), c)
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		err = produce(io.MultiWriter(diff, zw))
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	_, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}}, pr)
	pr.CloseWithError(err) // stops the producer if Put gave up first
	if err != nil {
		return events.SeedArtifact{}, &reasoned{ReasonUploadFailed, fmt.Errorf("put %s: %w", name, err)}
	}
	return events.SeedArtifact{
		Role: string(role), Object: name, MediaType: string(mt),
		Digest: blob.digest(), SizeBytes: blob.n, DiffID: diff.digest(), UncompressedSize: diff.n,
	}, nil
}

// compressor compresses on every core (a seed host has many). Both give
// output that depends only on the input, so an unchanged layer keeps its
// digest: pgzip compresses 1 MB blocks into one standard gzip stream, zstd
// at its default level.
func compressor(w io.Writer, c seedimage.Compression) (io.WriteCloser, error) {
	if c == seedimage.Zstd {
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	}
	zw, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if err := zw.SetConcurrency(1<<20, 2*runtime.GOMAXPROCS(0)); err != nil {
		return nil, err
	}
	return zw, nil
}

// chunkSize of the artifacts in the object store: 4x the store's default,
// a quarter of NATS's default max payload, so a GB layer is some 2,000
// messages rather than 8,000.
const chunkSize = 512 << 10

type counter struct {
	h hash.Hash
	n int64
}

func newCounter() *counter { return &counter{h: sha256.New()} }

func (c *counter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *counter) digest() string { return "sha256:" + hex.EncodeToString(c.h.Sum(nil)) }
