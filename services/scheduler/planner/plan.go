package planner

import (
	"maps"
	"slices"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// DefaultStepTimeout bounds a cluster's time in a step whose timeout is 0.
const DefaultStepTimeout = 2 * time.Hour

// DesiredWrite is a desired stage for the service to write to
// IBU_DESIRED/<ClusterID>, after it stored the plan that records it.
type DesiredWrite struct {
	ClusterID  string        `json:"clusterId"`
	Stage      stages.Stage  `json:"stage"`
	Generation int64         `json:"generation"`
	Action     stages.Action `json:"action"` // the plan action the stage is for
}

// NewPlan returns a new plan for the resolved clusters: Pending, every
// cluster Pending at the first action of step 0, canaries first.
func NewPlan(req events.PlanCreateRequested, clusterIDs []string, now time.Time) state.Plan {
	now = now.Round(0).UTC()
	p := state.Plan{Spec: req, Phase: events.PlanPending, CreatedAt: now, UpdatedAt: now,
		Reason: "Accepted", Message: "waiting to start"}
	var first stages.Action
	if len(req.Steps) > 0 && len(req.Steps[0].Actions) > 0 {
		first = req.Steps[0].Actions[0]
	}
	for _, id := range orderClusters(req.Canaries, clusterIDs) {
		p.Clusters = append(p.Clusters, state.PlanCluster{ClusterID: id, Canary: slices.Contains(req.Canaries, id),
			Action: first, State: state.ClusterPending})
	}
	p.Recount()
	p.ETASeconds = eta(p, now)
	return p
}

// stageFor is the desired stage that carries an action.
func stageFor(a stages.Action) stages.Stage {
	switch a {
	case stages.ActionPrep:
		return stages.Prep
	case stages.ActionUpgrade:
		return stages.Upgrade
	case stages.ActionRollback:
		return stages.Rollback
	}
	return stages.Idle // Finalize, Abort
}

// stepTimeout is a step's timeout, or the default.
func stepTimeout(st events.PlanStep) time.Duration {
	if d := time.Duration(st.RolloutStrategy.Timeout); d > 0 {
		return d
	}
	return DefaultStepTimeout
}

func clonePlan(p state.Plan) state.Plan {
	q := p
	q.Clusters = slices.Clone(p.Clusters)
	for i := range q.Clusters {
		q.Clusters[i].Completed = slices.Clone(q.Clusters[i].Completed)
	}
	q.StageDurations = maps.Clone(p.StageDurations)
	if p.ETASeconds != nil {
		v := *p.ETASeconds
		q.ETASeconds = &v
	}
	return q
}
