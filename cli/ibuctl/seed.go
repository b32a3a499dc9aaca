package ibuctl

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"ibu.dev/shared/buckets"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
	"ibu.dev/shared/store"
)

// runSeed: ibuctl seed build|status.
func runSeed(ctx context.Context, io IO, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: seed build|status", ErrUsage)
	}
	switch args[0] {
	case "-h", "--help", "help":
		_, err := fmt.Fprint(io.Out, "usage:\n  ibuctl seed build --cluster ID --image REGISTRY/REPO:TAG --push-secret kubernetes-secret:NAME[:NS]|dockerconfig-file:NAME:/PATH [--compression gzip|zstd] [--build-id ID] [--wait DURATION]\n  ibuctl seed status [BUILD|CLUSTER...] [-o table|json|yaml]\n")
		return err
	case "build":
		return runSeedBuild(ctx, io, args[1:])
	case "status":
		return runSeedStatus(ctx, io, args[1:])
	}
	return fmt.Errorf("%w: seed %q: want build or status", ErrUsage, args[0])
}

// parseSecretRef reads --push-secret with the syntax of upgrade's
// --pull-secret: kubernetes-secret:NAME[:NAMESPACE] or
// dockerconfig-file:NAME:/ABSOLUTE/PATH (a file on the seed-builder).
func parseSecretRef(s string) (events.SecretRef, error) {
	ref, err := parsePullSecret(s)
	if err != nil {
		return events.SecretRef{}, fmt.Errorf("--push-secret: %w", err)
	}
	return *ref, nil
}

func runSeedBuild(ctx context.Context, io IO, args []string) error {
	fs := newFlags("seed build", io)
	nf := addNATSFlags(fs, io)
	cluster := fs.String("cluster", "", "the seed cluster (required)")
	image := fs.String("image", "", "where to push: registry/repository:tag (required)")
	secret := fs.String("push-secret", "", "push credentials: kubernetes-secret:NAME[:NAMESPACE] or dockerconfig-file:NAME:/PATH (a file on the seed-builder) (required)")
	id := fs.String("build-id", "", "build id (default <cluster>-<unix time>)")
	comp := fs.String("compression", "gzip", "compression of the content layers: gzip or zstd")
	wait := fs.Duration("wait", 0, "wait this long for the build to end, printing its progress")
	pos, help, err := parseArgs(fs, args)
	if err != nil || help {
		return err
	}
	if len(pos) > 0 || *cluster == "" || *image == "" || *secret == "" {
		return fmt.Errorf("%w: seed build --cluster ID --image REGISTRY/REPO:TAG --push-secret REF", ErrUsage)
	}
	ref, err := parseSecretRef(*secret)
	if err != nil {
		return err
	}
	if *comp != "gzip" && *comp != "zstd" {
		return fmt.Errorf("%w: --compression %q: want gzip or zstd", ErrUsage, *comp)
	}
	if *id == "" {
		*id = fmt.Sprintf("%s-%d", *cluster, time.Now().Unix())
	}
	req := events.SeedBuildRequested{BuildID: *id, ClusterID: *cluster, SeedImage: *image, PushSecretRef: ref, Compression: *comp}
	e, err := events.New("/users/ibuctl", *cluster, req)
	if err != nil {
		return err
	}
	subject, err := events.SubjectFor(req.EventType(), *cluster)
	if err != nil {
		return err
	}
	nc, js, err := nf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	var w *store.Watcher[state.SeedBuild]
	if *wait > 0 {
		kv, err := openBucket(ctx, js, buckets.SeedBuilds.Name())
		if err != nil {
			return err
		}
		if w, err = store.Wrap(kv, buckets.SeedBuilds).Watch(ctx, []string{*id}); err != nil {
			return err
		}
		defer w.Stop()
	}
	if _, err := bus.NewPublisher(js).Publish(ctx, subject, e); err != nil {
		return fmt.Errorf("publish seed build request: %w", err)
	}
	fmt.Fprintf(io.Out, "seed build %s requested: %s from cluster %s\n", *id, *image, *cluster)
	if w == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("seed build %s: still running after %s (ibuctl seed status)", *id, *wait)
		case en, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					continue // the deadline's message, above
				}
				return fmt.Errorf("seed build %s: %w", *id, store.ErrWatchLost)
			}
			if en.Op != store.Put || en.Err != nil {
				continue
			}
			r := en.Value
			if line := seedLine(r); line != last {
				fmt.Fprintln(io.Out, line)
				last = line
			}
			switch r.State {
			case state.SeedBuildCompleted:
				return nil
			case state.SeedBuildFailed:
				return fmt.Errorf("seed build %s failed: %s: %s", r.BuildID, r.Reason, r.Message)
			}
		}
	}
}

func seedLine(r state.SeedBuild) string {
	s := fmt.Sprintf("%s %s %s", r.BuildID, r.State, r.Phase)
	if r.BytesTotal > 0 {
		s += fmt.Sprintf(" %s %d/%d bytes (%.0f%%)", r.Layer, r.BytesDone, r.BytesTotal, 100*float64(r.BytesDone)/float64(r.BytesTotal))
	}
	if r.Reason != "" {
		s += " " + r.Reason
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

func runSeedStatus(ctx context.Context, io IO, args []string) error {
	fs := newFlags("seed status", io)
	hf := addHubFlags(fs, io)
	pos, out, help, err := hf.parse(fs, args)
	if err != nil || help {
		return err
	}
	nc, js, err := hf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	kv, err := openBucket(ctx, js, buckets.SeedBuilds.Name())
	if err != nil {
		return err
	}
	entries, err := kvEntries(ctx, kv)
	if err != nil {
		return err
	}
	var builds []state.SeedBuild
	for _, en := range entries {
		if strings.HasPrefix(en.Key(), "lock.") {
			continue
		}
		r, err := buckets.SeedBuilds.Codec().Decode(en.Value())
		if err != nil {
			return fmt.Errorf("build %s: %w", en.Key(), err)
		}
		if len(pos) > 0 && !contains(pos, r.BuildID) && !contains(pos, r.ClusterID) {
			continue
		}
		builds = append(builds, r)
	}
	sort.Slice(builds, func(i, j int) bool { return builds[i].Started.After(builds[j].Started) })
	if out != outputTable {
		return writeData(io.Out, out, builds)
	}
	return writeSeedTable(io.Out, builds)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func writeSeedTable(w io.Writer, builds []state.SeedBuild) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUILD\tCLUSTER\tSTATE\tPHASE\tPROGRESS\tRESULT")
	for _, r := range builds {
		prog := "-"
		if r.BytesTotal > 0 {
			prog = fmt.Sprintf("%s %.0f%%", r.Layer, 100*float64(r.BytesDone)/float64(r.BytesTotal))
		}
		result := r.Reason + ": " + r.Message
		if r.Result != nil {
			result = fmt.Sprintf("%s@%s (%d layers, %d reused, %d images)", r.SeedImage, r.Result.Digest, r.Result.Layers, r.Result.ReusedLayers, r.Result.Images)
		} else if r.State == state.SeedBuildRunning {
			result = r.Message
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.BuildID, r.ClusterID, r.State, r.Phase, prog, result)
	}
	return tw.Flush()
}
