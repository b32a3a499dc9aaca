package state

import (
	"time"

	"ibu.dev/shared/events"
)

// Seed build states.
const (
	SeedBuildRunning   = "Running"
	SeedBuildCompleted = "Completed"
	SeedBuildFailed    = "Failed"
)

// SeedBuild is the value of IBU_SEED_BUILDS/<build id>: a build's request,
// where it is, and how it ended.
type SeedBuild struct {
	BuildID    string                     `json:"buildId"`
	ClusterID  string                     `json:"clusterId"`
	SeedImage  string                     `json:"seedImage"`
	State      string                     `json:"state"`
	Phase      events.SeedBuildPhase      `json:"phase"`
	Layer      string                     `json:"layer,omitempty"`
	BytesDone  int64                      `json:"bytesDone"`
	BytesTotal int64                      `json:"bytesTotal"`
	Message    string                     `json:"message,omitempty"`
	Reason     string                     `json:"reason,omitempty"`
	Result     *events.SeedBuildCompleted `json:"result,omitempty"`
	Started    time.Time                  `json:"started"`
	Updated    time.Time                  `json:"updated"`
	Finished   *time.Time                 `json:"finished,omitempty"`
}

// SeedBuildLockKey is the IBU_SEED_BUILDS key that holds the id of the
// build running on a seed cluster: one build per cluster at a time.
func SeedBuildLockKey(cluster string) string { return "lock." + cluster }
