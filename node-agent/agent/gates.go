package agent

import (
	"context"
	"errors"

	"ibu.dev/shared/events"
)

// The health gates and the OADP validation around the stages (the stage
// machine in docs/architecture.md): health before Prep changes anything, OADP content
// validated in Prep, health before the pivot (then the backup), health
// after the pivot (mandatory tier, then the restores), health before
// Finalize removes the way back.
const (
	stepPrepHealth     = "PrepHealthCheck"
	stepValidateOADP   = "ValidateOADP"
	stepPrePivotHealth = "PrePivotHealthCheck"
	stepFinalizeHealth = "FinalizeHealthCheck"
)

// healthGate is a step that asks the health service for the given tiers
// (none: every check) under the step's own name.
func (a *Agent) healthGate(step string, tiers ...events.HealthTier) func(context.Context, *runState) (any, error) {
	return func(ctx context.Context, r *runState) (any, error) {
		if !a.cfg.Services.Health {
			return skipped{"no health service serves this cluster: stabilisation not checked"}, nil
		}
		_, err := askService[events.HealthPassed](ctx, a, r, step, events.HealthCheckRequested{ClusterID: a.cfg.ClusterID, PlanID: r.run.PlanID,
			Generation: r.run.Generation, Step: step, Tiers: tiers, StableForSeconds: defaultStableWindow})
		return nil, err
	}
}

// validateOADP has the backup-restore service check the OADP content, the
// extra manifests and the cluster's Velero install in Prep, so a mistake
// fails Prep (resumable) instead of the Upgrade after the pivot.
func (a *Agent) validateOADP(ctx context.Context, r *runState) (any, error) {
	d := r.in.Desired
	switch {
	case len(d.OADPContent) == 0 && len(d.ExtraManifests) == 0:
		return skipped{"no OADP content or extra manifests in the plan"}, nil
	case !a.cfg.Services.BackupRestore:
		return nil, errors.New("the plan has OADP content but no backup-restore service serves this cluster")
	}
	_, err := askService[events.BackupCompleted](ctx, a, r, stepValidateOADP, events.BackupRequested{ClusterID: a.cfg.ClusterID, PlanID: d.PlanID,
		Generation: r.run.Generation, OADPContent: d.OADPContent, ExtraManifests: d.ExtraManifests, ValidateOnly: true})
	return nil, err
}
