package ibuctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// clusterRow is one cluster of `ibuctl clusters`: its inventory entry
// (IBU_CLUSTERS) joined with what its node agent reports (IBU_STATUS).
type clusterRow struct {
	ClusterID       string            `json:"clusterId"`
	Labels          map[string]string `json:"labels,omitempty"`
	Version         string            `json:"version"`
	BootedStateroot string            `json:"bootedStateroot,omitempty"`
	Stage           stages.Stage      `json:"stage,omitempty"`
	State           stages.State      `json:"state,omitempty"`
	AfterPivot      bool              `json:"afterPivot,omitempty"`
	Step            string            `json:"step,omitempty"`
	PlanID          string            `json:"planId,omitempty"`
	LastSeen        time.Time         `json:"lastSeen,omitzero"`
	// Registered is false for a cluster that reports a status but has no
	// inventory entry.
	Registered bool `json:"registered"`
}

// joinClusters joins the inventory with the statuses, sorted by id, and
// keeps those whose labels match sel (nil: all).
func joinClusters(inv map[string]state.Cluster, statuses map[string]state.Status, sel *events.LabelSelector) []clusterRow {
	ids := slices.Sorted(maps.Keys(inv))
	for id := range statuses {
		if _, ok := inv[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var rows []clusterRow
	for _, id := range ids {
		c, registered := inv[id]
		if sel != nil && !sel.Matches(c.Labels) {
			continue
		}
		r := clusterRow{ClusterID: id, Labels: c.Labels, Version: c.Version, BootedStateroot: c.BootedStateroot,
			Stage: c.Stage, State: c.State, LastSeen: c.LastSeen, Registered: registered}
		if st, ok := statuses[id]; ok {
			r.Stage, r.State, r.AfterPivot, r.Step, r.PlanID = st.Stage, st.State, st.AfterPivot, st.Step, st.PlanID
			if st.BootedStateroot != "" {
				r.BootedStateroot = st.BootedStateroot
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func formatLabels(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

func writeClusterTable(w io.Writer, rows []clusterRow, now time.Time) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "no clusters")
		return err
	}
	t := newTable(w, "CLUSTER", "LABELS", "VERSION", "BOOTED", "STAGE", "STEP", "PLAN", "LAST SEEN")
	for _, r := range rows {
		stage := ""
		if r.Stage != "" {
			stage = string(r.Stage) + "/" + string(r.State)
			if r.AfterPivot {
				stage += " (after pivot)"
			}
		}
		seen := "never"
		if !r.LastSeen.IsZero() {
			seen = age(now, r.LastSeen) + " ago"
		}
		t.row(r.ClusterID, truncate(formatLabels(r.Labels), 60), r.Version, r.BootedStateroot, stage, r.Step, r.PlanID, seen)
	}
	return t.flush()
}

func runClusters(ctx context.Context, io IO, args []string) error {
	fs := newFlags("clusters", io)
	hf := addHubFlags(fs, io)
	selFlag := fs.String("selector", "", "only clusters whose labels match: 'k=v,k!=v,k in (a,b),k notin (a,b),k,!k'")
	pos, out, help, err := hf.parse(fs, args)
	if err != nil || help {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: clusters takes no arguments (use --selector)", ErrUsage)
	}
	var sel *events.LabelSelector
	if *selFlag != "" {
		if sel, err = parseSelector(*selFlag); err != nil {
			return fmt.Errorf("--selector: %w", err)
		}
	}
	nc, js, err := hf.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	inv := map[string]state.Cluster{}
	statuses := map[string]state.Status{}
	for _, b := range []struct {
		name string
		put  func(key string, v []byte) error
	}{
		{bus.BucketClusters, func(key string, v []byte) error {
			var c state.Cluster
			if err := json.Unmarshal(v, &c); err != nil {
				return err
			}
			inv[key] = c
			return nil
		}},
		{bus.BucketStatus, func(key string, v []byte) error {
			var s state.Status
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			statuses[key] = s
			return nil
		}},
	} {
		kv, err := openBucket(ctx, js, b.name)
		if err != nil {
			return err
		}
		entries, err := kvEntries(ctx, kv)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := b.put(e.Key(), e.Value()); err != nil {
				fmt.Fprintf(io.Err, "ibuctl: %s/%s: %v\n", b.name, e.Key(), err)
			}
		}
	}
	rows := joinClusters(inv, statuses, sel)
	if out != outputTable {
		if rows == nil {
			rows = []clusterRow{}
		}
		return writeData(io.Out, out, rows)
	}
	return writeClusterTable(io.Out, rows, time.Now())
}
