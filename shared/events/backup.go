package events

// Backup and restore: tasks for the backup-restore service and its results.
const (
	TypeBackupRequested  = "dev.ibu.backup.requested.v1"
	TypeBackupCompleted  = "dev.ibu.backup.completed.v1"
	TypeBackupFailed     = "dev.ibu.backup.failed.v1"
	TypeRestoreRequested = "dev.ibu.restore.requested.v1"
	TypeRestoreCompleted = "dev.ibu.restore.completed.v1"
	TypeRestoreFailed    = "dev.ibu.restore.failed.v1"
)

func init() {
	register(Spec{Type: TypeBackupRequested, Name: "backup", Scope: ScopeTask, Service: ServiceBackupRestore,
		Description: "the node agent asks for the OADP backups of its cluster before the pivot",
		new:         func() any { return new(BackupRequested) }})
	register(Spec{Type: TypeBackupCompleted, Name: "backup.completed", Scope: ScopeCluster,
		Description: "every Velero Backup of the cluster completed",
		new:         func() any { return new(BackupCompleted) }})
	register(Spec{Type: TypeBackupFailed, Name: "backup.failed", Scope: ScopeCluster,
		Description: "a backup failed or its OADP content is invalid",
		new:         func() any { return new(BackupFailed) }})
	register(Spec{Type: TypeRestoreRequested, Name: "restore", Scope: ScopeTask, Service: ServiceBackupRestore,
		Description: "the node agent asks for the restores and extra manifests after the pivot",
		new:         func() any { return new(RestoreRequested) }})
	register(Spec{Type: TypeRestoreCompleted, Name: "restore.completed", Scope: ScopeCluster,
		Description: "every Velero Restore completed, wave by wave, and the extra manifests are applied",
		new:         func() any { return new(RestoreCompleted) }})
	register(Spec{Type: TypeRestoreFailed, Name: "restore.failed", Scope: ScopeCluster,
		Description: "a restore or an extra manifest failed",
		new:         func() any { return new(RestoreFailed) }})
}

// BackupRequested asks the backup-restore service to create the Velero
// Backups found in OADPContent on the cluster and wait for them. The extra
// manifests come along so they are validated before the pivot, not after.
type BackupRequested struct {
	ClusterID      string      `json:"clusterId"`
	PlanID         string      `json:"planId,omitempty"`
	Generation     int64       `json:"generation"`
	OADPContent    []ObjectRef `json:"oadpContent,omitempty"`
	ExtraManifests []ObjectRef `json:"extraManifests,omitempty"`
	// ValidateOnly: check the content and the cluster's Velero install
	// (Prep, before anything changes), create nothing. The answer is
	// BackupCompleted without backups, or BackupFailed.
	ValidateOnly bool `json:"validateOnly,omitempty"`
}

// RestoreRequested asks the backup-restore service to run the Velero
// Restores of OADPContent wave by wave, then apply ExtraManifests.
type RestoreRequested struct {
	ClusterID      string      `json:"clusterId"`
	PlanID         string      `json:"planId,omitempty"`
	Generation     int64       `json:"generation"`
	OADPContent    []ObjectRef `json:"oadpContent,omitempty"`
	ExtraManifests []ObjectRef `json:"extraManifests,omitempty"`
}

// VeleroObject is a Backup or Restore the service created, with its
// apply-wave and final Velero phase.
type VeleroObject struct {
	Name  string `json:"name"`
	Wave  int    `json:"wave"`
	Phase string `json:"phase"` // Velero's phase, e.g. Completed, PartiallyFailed
}

// BackupCompleted says every backup of the cluster completed.
type BackupCompleted struct {
	ClusterID  string         `json:"clusterId"`
	PlanID     string         `json:"planId,omitempty"`
	Generation int64          `json:"generation"`
	Backups    []VeleroObject `json:"backups,omitempty"` // none when there was no OADP content
	DurationMs int64          `json:"durationMs"`
}

// BackupFailed says why the backups failed; Backup names the failing one
// when there is one.
type BackupFailed struct {
	ClusterID  string `json:"clusterId"`
	PlanID     string `json:"planId,omitempty"`
	Generation int64  `json:"generation"`
	Backup     string `json:"backup,omitempty"`
	Reason     string `json:"reason"` // CamelCase, e.g. InvalidOADPContent, BackupFailed
	Message    string `json:"message"`
}

// RestoreCompleted says every restore completed and the extra manifests are
// applied.
type RestoreCompleted struct {
	ClusterID             string         `json:"clusterId"`
	PlanID                string         `json:"planId,omitempty"`
	Generation            int64          `json:"generation"`
	Restores              []VeleroObject `json:"restores,omitempty"`
	ExtraManifestsApplied int            `json:"extraManifestsApplied"`
	DurationMs            int64          `json:"durationMs"`
}

// RestoreFailed says why the restores failed; Restore names the failing one
// when there is one.
type RestoreFailed struct {
	ClusterID  string `json:"clusterId"`
	PlanID     string `json:"planId,omitempty"`
	Generation int64  `json:"generation"`
	Restore    string `json:"restore,omitempty"`
	Reason     string `json:"reason"` // CamelCase, e.g. MissingBackup, ExtraManifestFailed
	Message    string `json:"message"`
}

// EventType implements Data.
func (BackupRequested) EventType() string { return TypeBackupRequested }

// EventType implements Data.
func (BackupCompleted) EventType() string { return TypeBackupCompleted }

// EventType implements Data.
func (BackupFailed) EventType() string { return TypeBackupFailed }

// EventType implements Data.
func (RestoreRequested) EventType() string { return TypeRestoreRequested }

// EventType implements Data.
func (RestoreCompleted) EventType() string { return TypeRestoreCompleted }

// EventType implements Data.
func (RestoreFailed) EventType() string { return TypeRestoreFailed }
