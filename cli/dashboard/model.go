package dashboard

import (
	"encoding/json"
	"maps"
	"slices"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
	"ibu.dev/shared/telemetry"
)

// Row is one cluster in the list, as the browser gets it: short keys, no
// history (the cluster view fetches that).
type Row struct {
	ID      string            `json:"id"`
	Plan    string            `json:"plan,omitempty"`
	Stage   stages.Stage      `json:"stage,omitempty"`
	State   stages.State      `json:"state,omitempty"`
	Step    string            `json:"step,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	Version string            `json:"version,omitempty"`
	// Reason is why the cluster failed (its failed condition's message, or
	// the plan's verdict), empty otherwise.
	Reason   string  `json:"reason,omitempty"`
	Precache float64 `json:"precache,omitempty"` // 0..1 while precaching
	Updated  int64   `json:"updated,omitempty"`  // unix ms
}

// PlanStep is the progress of one step of a plan.
type PlanStep struct {
	Actions string `json:"actions"`
	Done    int    `json:"done"`
	Failed  int    `json:"failed"`
	Total   int    `json:"total"`
}

// PlanRow is one plan's summary.
type PlanRow struct {
	ID         string            `json:"id"`
	Phase      events.PlanPhase  `json:"phase"`
	Reason     string            `json:"reason,omitempty"`
	Message    string            `json:"message,omitempty"`
	Counts     events.PlanCounts `json:"counts"`
	Steps      []PlanStep        `json:"steps"`
	Current    int               `json:"current"`
	ETASeconds *int64            `json:"eta,omitempty"`
	Created    int64             `json:"created"`
	// Failed maps the plan's failed clusters to the scheduler's reason.
	Failed map[string]string `json:"-"`
}

func planRow(p state.Plan) PlanRow {
	r := PlanRow{ID: p.Spec.PlanID, Phase: p.Phase, Reason: p.Reason, Message: p.Message, Counts: p.Counts,
		Current: p.CurrentStep, ETASeconds: p.ETASeconds, Created: p.CreatedAt.UnixMilli(), Failed: map[string]string{}}
	for i, st := range p.Spec.Steps {
		ps := PlanStep{Total: len(p.Clusters)}
		for j, a := range st.Actions {
			if j > 0 {
				ps.Actions += "+"
			}
			ps.Actions += string(a)
		}
		for _, c := range p.Clusters {
			switch {
			case c.State.IsFailure() && c.Step == i:
				ps.Failed++
			case c.Step > i, c.Step == i && c.State == state.ClusterSucceeded:
				ps.Done++
			}
		}
		r.Steps = append(r.Steps, ps)
	}
	for _, c := range p.Clusters {
		if c.State.IsFailure() {
			r.Failed[c.ClusterID] = firstNonEmpty(c.Message, c.Reason, string(c.State))
		}
	}
	return r
}

func statusRow(st state.Status, cl *state.Cluster) Row {
	r := Row{ID: st.ClusterID, Plan: st.PlanID, Stage: st.Stage, State: st.State, Step: st.Step, Updated: st.UpdatedAt.UnixMilli()}
	if cl != nil {
		r.Labels, r.Version = cl.Labels, cl.Version
	}
	if st.State == stages.Failed {
		r.Reason = st.Message
	}
	if p := st.Precache; p != nil && st.Stage == stages.Prep && st.State == stages.InProgress && p.Total > 0 {
		r.Precache = float64(p.Pulled+p.Failed) / float64(p.Total)
	}
	return r
}

// TraceID is the id of the trace of cluster's upgrade in plan.
func TraceID(plan, cluster string) string {
	sc := telemetry.ClusterUpgrade(plan, cluster)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// model is the dashboard's view of the hub, and what changed since the
// last batch.
type model struct {
	rows     map[string]Row
	status   map[string]state.Status
	clusters map[string]*state.Cluster
	plans    map[string]PlanRow

	dirtyRows  map[string]struct{}
	dirtyPlans map[string]struct{}
}

func newModel() *model {
	return &model{rows: map[string]Row{}, status: map[string]state.Status{}, clusters: map[string]*state.Cluster{},
		plans: map[string]PlanRow{}, dirtyRows: map[string]struct{}{}, dirtyPlans: map[string]struct{}{}}
}

func (m *model) putStatus(st state.Status) {
	st.History = nil // the cluster view reads it from the KV
	m.status[st.ClusterID] = st
	m.refresh(st.ClusterID)
}

func (m *model) putCluster(c state.Cluster) {
	m.clusters[c.ClusterID] = &c
	m.refresh(c.ClusterID)
}

func (m *model) refresh(id string) {
	st, ok := m.status[id]
	if !ok {
		cl := m.clusters[id]
		if cl == nil {
			return
		}
		st = state.Status{ClusterID: id, Position: stages.IdlePosition}
	}
	r := statusRow(st, m.clusters[id])
	if r.Reason == "" && r.Plan != "" {
		if pr, ok := m.plans[r.Plan]; ok {
			r.Reason = pr.Failed[id]
		}
	}
	m.rows[id] = r
	m.dirtyRows[id] = struct{}{}
}

func (m *model) delete(id string) {
	delete(m.status, id)
	delete(m.clusters, id)
	delete(m.rows, id)
	m.dirtyRows[id] = struct{}{}
}

func (m *model) putPlan(p state.Plan) {
	old := m.plans[p.Spec.PlanID]
	r := planRow(p)
	m.plans[r.ID] = r
	m.dirtyPlans[r.ID] = struct{}{}
	// A verdict the scheduler gave (a timeout, say) shows on the row.
	for id := range r.Failed {
		if old.Failed[id] != r.Failed[id] {
			m.refresh(id)
		}
	}
}

// Snapshot is everything the page shows, sent when it connects.
type Snapshot struct {
	Plans    []PlanRow `json:"plans"`
	Clusters []Row     `json:"clusters"`
}

// Delta is what changed in one batch; Removed lists deleted clusters.
type Delta struct {
	Plans    []PlanRow `json:"plans,omitempty"`
	Clusters []Row     `json:"clusters,omitempty"`
	Removed  []string  `json:"removed,omitempty"`
}

func (m *model) snapshot() Snapshot {
	s := Snapshot{Plans: make([]PlanRow, 0, len(m.plans)), Clusters: make([]Row, 0, len(m.rows))}
	for _, id := range slices.Sorted(maps.Keys(m.plans)) {
		s.Plans = append(s.Plans, m.plans[id])
	}
	for _, id := range slices.Sorted(maps.Keys(m.rows)) {
		s.Clusters = append(s.Clusters, m.rows[id])
	}
	return s
}

// takeDelta returns the changes since the last call, nil when none.
func (m *model) takeDelta() []byte {
	if len(m.dirtyRows) == 0 && len(m.dirtyPlans) == 0 {
		return nil
	}
	var d Delta
	for id := range m.dirtyPlans {
		d.Plans = append(d.Plans, m.plans[id])
	}
	for id := range m.dirtyRows {
		if r, ok := m.rows[id]; ok {
			d.Clusters = append(d.Clusters, r)
		} else {
			d.Removed = append(d.Removed, id)
		}
	}
	clear(m.dirtyRows)
	clear(m.dirtyPlans)
	b, _ := json.Marshal(d)
	return b
}
