package events

import (
	"strings"
	"time"

	"ibu.dev/shared/fingerprint"
	"ibu.dev/shared/stages"
)

// Fully populated examples, one per type: every optional field set, so that
// validating them proves every Go field against its schema.
var (
	exTime    = time.Date(2025, 11, 25, 15, 4, 5, 123456789, time.UTC)
	exDigest  = "sha256:" + strings.Repeat("ab", 32)
	exDigest2 = "sha256:" + strings.Repeat("0f", 32)
	exPinned  = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@" + exDigest
	exSeed    = "registry.example.com/ibu/seed:4.16.3"
	exTrue    = true
	exETA     = int64(420)
	exSecret  = &SecretRef{Kind: SecretKindKubernetes, Name: "seed-pull", Namespace: "ibu-system"}
	exOADP    = []ObjectRef{{Namespace: "openshift-adp", Name: "oadp-cm"}}
	exExtra   = []ObjectRef{{Namespace: "ibu-system", Name: "extra-manifests"}}
	exChecks  = []CheckResult{
		{Name: "ClusterOperators", Tier: TierMandatory, Passed: true, Reason: "AllAvailable", Message: "34 operators available"},
		{Name: "CSVs", Tier: TierDeferred, Passed: false, Reason: "CSVNotSucceeded", Message: "sriov-operator.v4.16 is Installing"},
	}
)

func examples() []Data {
	return []Data{
		PlanCreateRequested{
			PlanID: "upgrade-4-16-3", SeedImage: exSeed, SeedVersion: "4.16.3",
			PullSecretRef: exSecret, OADPContent: exOADP, ExtraManifests: exExtra,
			Clusters: ClusterSelection{
				Selector: &LabelSelector{
					MatchLabels: map[string]string{"ibu.dev/group": "canary-wave", "region": "eu-west"},
					MatchExpressions: []LabelSelectorRequirement{
						{Key: "site", Operator: SelectorIn, Values: []string{"par1", "par2"}},
						{Key: "ibu.dev/frozen", Operator: SelectorDoesNotExist},
					},
				},
				ClusterIDs: []string{"sno-001", "sno-002"},
			},
			Steps: []PlanStep{
				{Actions: []stages.Action{stages.ActionPrep}, RolloutStrategy: RolloutStrategy{MaxConcurrency: 50, Timeout: Duration(90 * time.Minute)}},
				{Actions: []stages.Action{stages.ActionUpgrade, stages.ActionFinalize}, RolloutStrategy: RolloutStrategy{MaxConcurrency: 10, Timeout: Duration(2 * time.Hour)}},
				{Actions: []stages.Action{stages.ActionAbortOnFailure}, RolloutStrategy: RolloutStrategy{MaxConcurrency: 100}},
			},
			Canaries:      []string{"sno-001"},
			FailurePolicy: &FailurePolicy{MaxFailures: "10%", OnBreach: BreachPause},
			MaintenanceWindows: []MaintenanceWindow{
				{Days: []Weekday{Saturday, Sunday}, Start: "22:00", End: "04:00", TimeZone: "Europe/Paris"},
			},
			AutoRollbackOnFailure: &exTrue, DryRun: true,
		},
		PlanPauseRequested{PlanID: "upgrade-4-16-3", Reason: "canary sno-001 is slow, investigating"},
		PlanResumeRequested{PlanID: "upgrade-4-16-3", Reason: "fixed the registry mirror"},
		PlanAbortRequested{PlanID: "upgrade-4-16-3", Reason: "wrong seed"},
		PlanStatusChanged{
			PlanID: "upgrade-4-16-3", Phase: PlanRunning, Reason: "StepInProgress", Message: "step 2 of 3",
			Counts:      PlanCounts{Total: 100, Pending: 40, InProgress: 10, Succeeded: 47, Failed: 2, Skipped: 1},
			CurrentStep: 1, ETASeconds: &exETA,
		},
		ClusterRegistered{
			ClusterID: "sno-001", Labels: map[string]string{"region": "eu-west", "site": "par1"},
			Version: "4.15.12", BootedStateroot: "rhcos",
			Stateroots:   []Stateroot{{Name: "rhcos", Version: "4.15.12"}, {Name: "rhcos_4.16.3", Version: "4.16.3"}},
			AgentVersion: "v0.1.0-12-gabcdef0",
			Fingerprint: Fingerprint{
				Architecture: "amd64", Platform: "BareMetal", NetworkType: "OVNKubernetes", IPFamily: fingerprint.DualStack,
				FIPS: true, Proxy: true, TrustBundleHash: "sha256:0f3c", ContainerStorage: "separate-partition",
				Operators: []fingerprint.Operator{{Name: "sriov-network-operator", Version: "4.16.1"}, {Name: "lvms-operator", Version: "4.16.0"}},
			},
		},
		ClusterHeartbeat{ClusterID: "sno-001", Seq: 42, Time: exTime, Stage: StageUpgrade, State: StateInProgress},
		DesiredStageSet{
			ClusterID: "sno-001", Stage: StagePrep, SeedImage: exSeed, SeedVersion: "4.16.3",
			PlanID: "upgrade-4-16-3", Generation: 3, PullSecretRef: exSecret,
			OADPContent: exOADP, ExtraManifests: exExtra, AutoRollbackOnFailure: &exTrue,
		},
		StageChanged{
			ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3,
			Stage: StagePrep, State: StateFailed, PreviousStage: StagePrep, PreviousState: StateInProgress,
			AfterPivot: false,
			Conditions: []Condition{{Type: "PrepCompleted", Status: ConditionFalse, Reason: "ImagePullFailed",
				Message: "3 images could not be pulled", LastTransitionTime: exTime}},
			ValidNextStages: []Stage{StageIdle, StagePrep},
		},
		StepStarted{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3, Stage: StagePrep, Step: "DeployStateroot", Attempt: 2},
		StepFinished{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3, Stage: StagePrep, Step: "DeployStateroot",
			Attempt: 2, Result: StepFailed, Error: "ostree admin deploy: exit status 1", DurationMs: 81234},
		SeedBuildRequested{BuildID: "seed-4-16-3-a", ClusterID: "seed-lab", SeedImage: exSeed,
			PushSecretRef: SecretRef{Kind: SecretKindDockerConfigFile, Name: "push-creds", Path: "/var/run/secrets/ibu/push/config.json"},
			Compression:   "zstd"},
		SeedBuildProgress{ClusterID: "seed-lab", BuildID: "seed-4-16-3-a", Phase: SeedPushing, Message: "layer 3 of 4",
			BytesDone: 1 << 30, BytesTotal: 3 << 30, Layer: "ostree"},
		SeedBuildCompleted{ClusterID: "seed-lab", BuildID: "seed-4-16-3-a", SeedImage: exSeed, Digest: exDigest,
			SeedVersion: "4.16.3", Layers: 4, ReusedLayers: 1, SizeBytes: 3 << 30, DurationMs: 912000,
			Images: 136, LayerDigests: []string{exDigest, exDigest2}},
		SeedBuildFailed{ClusterID: "seed-lab", BuildID: "seed-4-16-3-a", Phase: SeedValidating,
			Reason: "SeedClusterUnhealthy", Message: "ClusterOperator ingress is Degraded"},
		SeedCaptureRequested{ClusterID: "seed-lab", BuildID: "seed-4-16-3-a", Mode: CaptureFull, Bucket: "IBU_SEED_ARTIFACTS", Compression: "zstd"},
		SeedCaptureCompleted{ClusterID: "seed-lab", BuildID: "seed-4-16-3-a", Mode: CaptureFull,
			Inventory: SeedHostInventory{Version: "4.16.3", Stateroot: "rhcos", OstreeCommit: strings.Repeat("ab", 32),
				Namespaces: []string{"openshift-etcd"}, CRDs: []string{"clusterversions.config.openshift.io"},
				PersistentVolumes: []string{"pv-local-1"}, Healthy: true, HealthMessage: "all operators available", Images: 136},
			Artifacts: []SeedArtifact{{Role: "ostree", Object: "seed-4-16-3-a/ostree", MediaType: "application/vnd.ibu.seed.ostree.v1.tar+gzip",
				Digest: exDigest, SizeBytes: 2 << 30, DiffID: exDigest2, UncompressedSize: 5 << 30}},
			InfoObject: "seed-4-16-3-a/seed.json", QuiescedMs: 61000, DurationMs: 95000},
		SeedCaptureFailed{ClusterID: "seed-lab", BuildID: "seed-4-16-3-a", Mode: CaptureFull, Reason: "ExportFailed",
			Message: "ostree pull-local: no space left on device", WorkloadsRunning: true},
		PrecacheRequested{
			ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3, SeedImage: exSeed, PullSecretRef: exSecret,
			RegistryMappings: []RegistryMapping{{From: "quay.io/openshift-release-dev", To: "mirror.example.com:5000/ocp"}},
			BestEffort:       true, Concurrency: 8, PresentImages: []string{exPinned},
		},
		PrecachePlanned{
			ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3,
			Images: []PullImage{{Image: exPinned, SizeBytes: 123456789,
				Layers: []Layer{{Digest: exDigest, SizeBytes: 100000000}, {Digest: exDigest2, SizeBytes: 23456789}}}},
			Concurrency: 4, MaxBytesPerSec: 50 << 20, BestEffort: true, PullSecretRef: exSecret,
		},
		PrecacheProgress{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3, Total: 136, Pulled: 40, Failed: 1,
			AlreadyPresent: 60, BytesDone: 4 << 30, BytesTotal: 9 << 30, RateBytesPerSec: 80 << 20, ETASeconds: &exETA},
		PrecacheCompleted{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3, Total: 136, Pulled: 75, Failed: 1,
			AlreadyPresent: 60, BytesTotal: 9 << 30, DurationMs: 600000,
			FailedImages: []ImageFailure{{Image: exPinned, Reason: "NotFound", Message: "manifest unknown"}}},
		PrecacheFailed{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 3, Reason: "ImagePullFailed",
			Message: "1 image could not be pulled", FailedImages: []ImageFailure{{Image: exPinned, Reason: "Unauthorized", Message: "401"}}},
		BackupRequested{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4, OADPContent: exOADP, ExtraManifests: exExtra, ValidateOnly: true},
		BackupCompleted{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4,
			Backups: []VeleroObject{{Name: "acm-klusterlet", Wave: 1, Phase: "Completed"}}, DurationMs: 45000},
		BackupFailed{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4, Backup: "apps",
			Reason: "BackupPartiallyFailed", Message: "2 items failed"},
		RestoreRequested{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4, OADPContent: exOADP, ExtraManifests: exExtra},
		RestoreCompleted{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4,
			Restores: []VeleroObject{{Name: "acm-klusterlet", Wave: -1, Phase: "Completed"}}, ExtraManifestsApplied: 3, DurationMs: 70000},
		RestoreFailed{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4, Restore: "apps",
			Reason: "MissingBackup", Message: "backup apps not found in the storage location"},
		HealthCheckRequested{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4, Step: "PostPivotHealth",
			Checks: []string{"ClusterOperators", "Nodes"}, Tiers: []HealthTier{TierMandatory},
			StableForSeconds: 120, Timeout: Duration(30 * time.Minute)},
		HealthPassed{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4, Step: "PostPivotHealth",
			Checks: exChecks[:1], DurationMs: 130000},
		HealthFailed{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", Generation: 4, Step: "PostPivotHealth",
			Reason: "TimedOut", Message: "CSVs not succeeded after 30m", Checks: exChecks, DurationMs: 1800000},
		Rejected{ClusterID: "sno-001", PlanID: "upgrade-4-16-3", RefusedType: TypeDesiredStageSet,
			RefusedID: "8c1f6f0e-1d7c-4d6e-9f55-0e8c2b7a1f00", RefusedSubject: "$KV.IBU_DESIRED.sno-001",
			Service: ServiceNodeAgent, Reason: "InvalidTransition", Message: "Upgrade requested but Prep has not completed"},
	}
}
