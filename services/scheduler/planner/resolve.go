package planner

import (
	"fmt"
	"slices"
	"strings"

	"ibu.dev/shared/events"
	"ibu.dev/shared/state"
)

// The codes of Resolve's reasons.
const (
	CodeUnknownCluster       = "UnknownCluster"
	CodeEmptySelection       = "EmptySelection"
	CodeClusterInAnotherPlan = "ClusterInAnotherPlan"
	CodeCanaryNotSelected    = "CanaryNotSelected"
)

// Resolve returns a plan's clusters: those of the inventory matching the
// selector plus the listed ones, canaries first in the order given, then
// the others sorted by id. It returns a *SelectionError listing every
// problem: a listed cluster not in the inventory, nothing selected, a
// cluster already in another active plan, a canary not selected.
func Resolve(req events.PlanCreateRequested, inventory []state.Cluster, active []state.Plan) ([]string, error) {
	var rs reasons
	known := make(map[string]bool, len(inventory))
	selected := map[string]bool{}
	sel := req.Clusters.Selector
	for _, c := range inventory {
		known[c.ClusterID] = true
		if sel.Matches(c.Labels) {
			selected[c.ClusterID] = true
		}
	}
	var unknown []string
	for _, id := range req.Clusters.ClusterIDs {
		if !known[id] {
			if !slices.Contains(unknown, id) {
				unknown = append(unknown, id)
			}
			continue
		}
		selected[id] = true
	}
	if len(unknown) > 0 {
		rs.add(CodeUnknownCluster, "clusters %s are not in the inventory (IBU_CLUSTERS)", strings.Join(unknown, ", "))
	}
	if len(selected) == 0 {
		rs.add(CodeEmptySelection, "the selection matches no cluster")
	}
	var busy []string
	for _, p := range active {
		if !p.IsActive() || p.Spec.PlanID == req.PlanID {
			continue
		}
		for _, c := range p.Clusters {
			if selected[c.ClusterID] {
				busy = append(busy, fmt.Sprintf("%s (plan %s)", c.ClusterID, p.Spec.PlanID))
			}
		}
	}
	if len(busy) > 0 {
		slices.Sort(busy)
		rs.add(CodeClusterInAnotherPlan, "clusters already in another active plan: %s", strings.Join(busy, ", "))
	}
	var notSel []string
	for _, c := range req.Canaries {
		if !selected[c] {
			notSel = append(notSel, c)
		}
	}
	if len(notSel) > 0 {
		rs.add(CodeCanaryNotSelected, "canaries %s are not among the selected clusters", strings.Join(notSel, ", "))
	}
	if len(rs) > 0 {
		return nil, &SelectionError{Reasons: rs}
	}
	ids := make([]string, 0, len(selected))
	for id := range selected {
		ids = append(ids, id)
	}
	return orderClusters(req.Canaries, ids), nil
}

// orderClusters puts the canaries among ids first, in the canaries' order,
// then the rest sorted; duplicates are dropped.
func orderClusters(canaries, ids []string) []string {
	in := make(map[string]bool, len(ids))
	for _, id := range ids {
		in[id] = true
	}
	out := make([]string, 0, len(in))
	for _, c := range canaries {
		if in[c] {
			out = append(out, c)
			delete(in, c)
		}
	}
	rest := make([]string, 0, len(in))
	for id := range in {
		rest = append(rest, id)
	}
	slices.Sort(rest)
	return append(out, rest...)
}
