package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"ibu.dev/node-agent/host"
	"ibu.dev/node-agent/seedapply"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/state"
)

// Upgrade, rollback and idle step names.
const (
	stepBackup          = "BackupData"
	stepExportIdentity  = "ExportIdentity"
	stepPivot           = "Pivot"
	stepRecordBoot      = "RecordBootID"
	stepReboot          = "Reboot"
	stepVerifyBooted    = "VerifyBooted"
	stepHealth          = "HealthCheck"
	stepRestore         = "RestoreData"
	stepSetDefaultOld   = "SetDefaultOld"
	stepRemoveOld       = "RemoveOldStateroot"
	stepRemoveNew       = "RemoveNewStateroot"
	stepRestoreDefault  = "RestoreBootDefault"
	stepCleanWorkDir    = "CleanWorkDir"
	stepRemovePulled    = "RemovePrecachedImages"
	phasePrePivot       = "PrePivot"
	phaseReboot         = "Reboot"
	phasePostPivot      = "PostPivot"
	phaseCleanup        = "Cleanup"
	defaultStableWindow = 60
)

func (a *Agent) upgradeSteps() []step {
	return []step{
		{stepPrePivotHealth, phasePrePivot, a.healthGate(stepPrePivotHealth)},
		{stepBackup, phasePrePivot, a.backup},
		{stepExportIdentity, phasePrePivot, a.exportIdentity},
		{stepPivot, phasePrePivot, a.pivot},
		{stepRecordBoot, phaseReboot, a.recordBoot},
		{stepReboot, phaseReboot, a.reboot},
		{stepVerifyBooted, phasePostPivot, a.verifyBootedNew},
		{stepHealth, phasePostPivot, a.health},
		{stepRestore, phasePostPivot, a.restore},
	}
}

func (a *Agent) rollbackSteps() []step {
	return []step{
		{stepSetDefaultOld, phasePrePivot, a.setDefaultOld},
		{stepRecordBoot, phaseReboot, a.recordBoot},
		{stepReboot, phaseReboot, a.reboot},
		{stepVerifyBooted, phasePostPivot, a.verifyBootedOld},
		{stepHealth, phasePostPivot, a.health},
	}
}

func (a *Agent) finalizeSteps() []step {
	return []step{
		{stepFinalizeHealth, phaseCleanup, a.healthGate(stepFinalizeHealth)},
		{stepRemoveOld, phaseCleanup, a.removeOld},
		{stepCleanWorkDir, phaseCleanup, a.cleanWorkDir},
	}
}

func (a *Agent) finalizeRollbackSteps() []step {
	return []step{
		{stepRemoveNew, phaseCleanup, a.removeNew},
		{stepCleanWorkDir, phaseCleanup, a.cleanWorkDir},
	}
}

func (a *Agent) abortSteps() []step {
	return []step{
		{stepRestoreDefault, phaseCleanup, a.restoreDefault},
		{stepRemoveNew, phaseCleanup, a.removeNew},
		{stepRemovePulled, phaseCleanup, a.removePulled},
		{stepCleanWorkDir, phaseCleanup, a.cleanWorkDir},
	}
}

// removePulled removes the images Prep added (listed before it pulled), so
// an abort leaves the node's image store as it found it.
func (a *Agent) removePulled(ctx context.Context, r *runState) (any, error) {
	if r.in.SeedVersion == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(a.workDir(r), pullsFile))
	if errors.Is(err, os.ErrNotExist) {
		return skipped{"Prep pulled no images"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read precache pulls: %w", err)
	}
	var imgs []string
	if err := json.Unmarshal(b, &imgs); err != nil {
		return nil, fmt.Errorf("read precache pulls: %w", err)
	}
	for _, img := range imgs {
		if err := a.d.Images.Remove(ctx, img); err != nil {
			return nil, fmt.Errorf("remove image %s: %w", img, err)
		}
	}
	return map[string]int{"removed": len(imgs)}, nil
}

// skipped is the output of a step that had nothing to do, with the reason.
type skipped struct {
	Skipped string `json:"skipped"`
}

func (a *Agent) backup(ctx context.Context, r *runState) (any, error) {
	d := r.in.Desired
	switch {
	case len(d.OADPContent) == 0:
		return skipped{"no OADP content in the plan: no application data to back up"}, nil
	case !a.cfg.Services.BackupRestore:
		return nil, errors.New("the plan has OADP content but no backup-restore service serves this cluster")
	}
	_, err := askService[events.BackupCompleted](ctx, a, r, stepBackup, events.BackupRequested{ClusterID: a.cfg.ClusterID, PlanID: d.PlanID,
		Generation: r.run.Generation, OADPContent: d.OADPContent, ExtraManifests: d.ExtraManifests})
	return nil, err
}

func (a *Agent) restore(ctx context.Context, r *runState) (any, error) {
	d := r.in.Desired
	switch {
	case len(d.OADPContent) == 0 && len(d.ExtraManifests) == 0:
		return skipped{"no OADP content or extra manifests in the plan"}, nil
	case !a.cfg.Services.BackupRestore:
		return nil, errors.New("the plan has OADP content but no backup-restore service serves this cluster")
	}
	_, err := askService[events.RestoreCompleted](ctx, a, r, stepRestore, events.RestoreRequested{ClusterID: a.cfg.ClusterID, PlanID: d.PlanID,
		Generation: r.run.Generation, OADPContent: d.OADPContent, ExtraManifests: d.ExtraManifests})
	return nil, err
}

func (a *Agent) health(ctx context.Context, r *runState) (any, error) {
	if !a.cfg.Services.Health {
		return skipped{"no health service serves this cluster: stabilisation not checked"}, nil
	}
	step := r.run.Stage + stepHealth
	var tiers []events.HealthTier
	if r.run.Stage == string(stages.Upgrade) {
		// Deferred checks (CSVs, CSRs) may pass only once the restores
		// have brought the workloads back: after the pivot, before the
		// restores, only the mandatory tier gates.
		tiers = []events.HealthTier{events.TierMandatory}
	}
	_, err := askService[events.HealthPassed](ctx, a, r, step, events.HealthCheckRequested{ClusterID: a.cfg.ClusterID, PlanID: r.run.PlanID,
		Generation: r.run.Generation, Step: step, Tiers: tiers, StableForSeconds: defaultStableWindow})
	return nil, err
}

// exportIdentity copies this cluster's identity files from the running
// stateroot's /etc into the new one, just before the pivot, so that what
// changed since Prep (rotated keys, a new hostname) is what the new
// stateroot boots with.
func (a *Agent) exportIdentity(ctx context.Context, r *runState) (any, error) {
	newRoot, _, err := a.d.Stateroots.Paths(ctx, r.in.NewStateroot)
	if err != nil {
		return nil, err
	}
	oldRoot, _, err := a.d.Stateroots.Paths(ctx, r.in.OldStateroot)
	if err != nil {
		return nil, err
	}
	return nil, seedapply.CopyIdentity(ctx, filepath.Join(oldRoot, "etc"), filepath.Join(newRoot, "etc"), seedapply.DefaultIdentity())
}

func (a *Agent) pivot(ctx context.Context, r *runState) (any, error) {
	if r.in.NewStateroot == "" {
		return nil, errors.New("no new stateroot: Prep did not complete")
	}
	if err := a.d.Stateroots.SetDefault(ctx, r.in.NewStateroot); err != nil {
		return nil, fmt.Errorf("pivot to %s: %w", r.in.NewStateroot, err)
	}
	return pivotOutput{At: a.d.Now().UTC()}, nil
}

type bootOutput struct {
	BootID string `json:"bootId"`
}

func (a *Agent) recordBoot(ctx context.Context, _ *runState) (any, error) {
	id, err := a.d.Boot.BootID(ctx)
	if err != nil {
		return nil, fmt.Errorf("read boot id: %w", err)
	}
	return bootOutput{BootID: id}, nil
}

// reboot is done once the boot id differs from the one recorded before it;
// until then it asks the host to reboot (again, if the agent crashed before
// the first request reached the host).
func (a *Agent) reboot(ctx context.Context, r *runState) (any, error) {
	var before bootOutput
	if err := r.output(stepRecordBoot, &before); err != nil {
		return nil, err
	}
	now, err := a.d.Boot.BootID(ctx)
	if err != nil {
		return nil, fmt.Errorf("read boot id: %w", err)
	}
	if now != before.BootID {
		return nil, nil
	}
	if _, err := a.updateStatus(ctx, func(s *state.Status, _ bool) {
		s.Message = fmt.Sprintf("%s: rebooting", r.run.Action)
	}); err != nil {
		return nil, err
	}
	return nil, a.d.Rebooter.Reboot(ctx, string(r.run.Action))
}

func (a *Agent) verifyBootedNew(ctx context.Context, r *runState) (any, error) {
	booted, err := a.d.Stateroots.Booted(ctx)
	if err != nil {
		return nil, err
	}
	if booted.Stateroot != r.in.NewStateroot {
		return nil, fmt.Errorf("host came back on stateroot %s, expected %s", booted.Stateroot, r.in.NewStateroot)
	}
	_, err = a.updateStatus(ctx, func(s *state.Status, _ bool) {
		s.BootedStateroot, s.AfterPivot = booted.Stateroot, true
		s.Conditions = stages.ConditionsFor(s.Conditions, s.Position, "booted "+booted.Stateroot, a.d.Now().UTC())
	})
	return nil, err
}

func (a *Agent) setDefaultOld(ctx context.Context, r *runState) (any, error) {
	if err := a.d.Stateroots.SetDefault(ctx, r.in.OldStateroot); err != nil {
		return nil, fmt.Errorf("make %s the boot default: %w", r.in.OldStateroot, err)
	}
	return nil, nil
}

func (a *Agent) verifyBootedOld(ctx context.Context, r *runState) (any, error) {
	booted, err := a.d.Stateroots.Booted(ctx)
	if err != nil {
		return nil, err
	}
	if booted.Stateroot != r.in.OldStateroot {
		return nil, fmt.Errorf("host came back on stateroot %s, expected %s", booted.Stateroot, r.in.OldStateroot)
	}
	_, err = a.updateStatus(ctx, func(s *state.Status, _ bool) { s.BootedStateroot, s.AfterPivot = booted.Stateroot, false })
	return nil, err
}

func (a *Agent) removeOld(ctx context.Context, r *runState) (any, error) {
	return nil, a.removeStateroot(ctx, r.in.OldStateroot)
}

func (a *Agent) removeNew(ctx context.Context, r *runState) (any, error) {
	name := r.in.NewStateroot
	if name == "" {
		// Abort before InspectSeed named it: nothing was deployed.
		return skipped{"no new stateroot was created"}, nil
	}
	return nil, a.removeStateroot(ctx, name)
}

func (a *Agent) removeStateroot(ctx context.Context, name string) error {
	if name == "" {
		return nil
	}
	if err := a.d.Stateroots.Remove(ctx, name); err != nil && !errors.Is(err, host.ErrNotFound) {
		return fmt.Errorf("remove stateroot %s: %w", name, err)
	}
	return nil
}

// restoreDefault undoes a pivot that happened before an abort (the host
// did not reboot into it: Decide allows abort only before the pivot took
// effect).
func (a *Agent) restoreDefault(ctx context.Context, r *runState) (any, error) {
	deps, err := a.d.Stateroots.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	if len(deps) == 0 || deps[0].Stateroot == r.in.OldStateroot || r.in.OldStateroot == "" {
		return nil, nil
	}
	return nil, a.d.Stateroots.SetDefault(ctx, r.in.OldStateroot)
}

func (a *Agent) cleanWorkDir(_ context.Context, r *runState) (any, error) {
	if r.in.SeedVersion == "" {
		return nil, nil
	}
	if err := os.RemoveAll(a.workDir(r)); err != nil {
		return nil, fmt.Errorf("remove seed work directory: %w", err)
	}
	return nil, nil
}
