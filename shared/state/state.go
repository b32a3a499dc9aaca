// Package state holds the value types of ibu's KV buckets, the
// level-triggered half of the design: what is desired of a cluster
// (IBU_DESIRED), what a cluster reports of itself (IBU_STATUS) and what the
// fleet inventory knows of it (IBU_CLUSTERS). Writers and readers in every
// service share these types; no service defines its own.
package state

import (
	"encoding/json"
	"fmt"
	"time"

	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

// Desired is the value of IBU_DESIRED/<cluster>. It is the contract's
// DesiredStageSet document, so a key written by hand (nats kv put) is held
// to the same schema as the event.
type Desired = events.DesiredStageSet

// DecodeDesired parses and validates an IBU_DESIRED value.
func DecodeDesired(b []byte) (Desired, error) {
	var d Desired
	if err := events.ValidateData(events.TypeDesiredStageSet, b); err != nil {
		return d, fmt.Errorf("desired state: %w", err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("desired state: %w", err)
	}
	return d, nil
}

// EncodeDesired validates and serialises an IBU_DESIRED value.
func EncodeDesired(d Desired) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode desired state: %w", err)
	}
	if err := events.ValidateData(events.TypeDesiredStageSet, b); err != nil {
		return nil, fmt.Errorf("desired state: %w", err)
	}
	return b, nil
}

// Cluster is the value of IBU_CLUSTERS/<cluster>: the agent's registration
// plus what its heartbeats keep fresh.
type Cluster struct {
	events.ClusterRegistered
	RegisteredAt time.Time    `json:"registeredAt"`
	LastSeen     time.Time    `json:"lastSeen"`
	Stage        stages.Stage `json:"stage,omitempty"`
	State        stages.State `json:"state,omitempty"`
}

// Precache is typed precache progress, never prose to parse.
type Precache struct {
	Total           int     `json:"total"`
	Pulled          int     `json:"pulled"`
	Failed          int     `json:"failed"`
	BytesDone       int64   `json:"bytesDone,omitempty"`
	BytesTotal      int64   `json:"bytesTotal,omitempty"`
	RateBytesPerSec float64 `json:"rateBytesPerSec,omitempty"`
	ETASeconds      int64   `json:"etaSeconds,omitempty"`
}

// String renders progress the way operators know it from Lifecycle Agent.
func (p Precache) String() string {
	return fmt.Sprintf("total: %d (pulled: %d, failed: %d)", p.Total, p.Pulled, p.Failed)
}

// Status is the value of IBU_STATUS/<cluster>, written only by the
// cluster's node agent with compare-and-set.
type Status struct {
	ClusterID string `json:"clusterId"`
	stages.Position
	// Action is what the current or last run does (Prep, Abort, Finalize...).
	Action stages.Action `json:"action,omitempty"`
	// ObservedGeneration is the IBU_DESIRED generation last acted on
	// (started, or refused with an InvalidTransition condition).
	ObservedGeneration int64  `json:"observedGeneration"`
	PlanID             string `json:"planId,omitempty"`
	SeedImage          string `json:"seedImage,omitempty"`
	SeedVersion        string `json:"seedVersion,omitempty"`
	// OldStateroot is the stateroot the cluster ran when the upgrade began;
	// NewStateroot the one made from the seed.
	OldStateroot    string               `json:"oldStateroot,omitempty"`
	NewStateroot    string               `json:"newStateroot,omitempty"`
	BootedStateroot string               `json:"bootedStateroot,omitempty"`
	Step            string               `json:"step,omitempty"`
	Conditions      []stages.Condition   `json:"conditions,omitempty"`
	ValidNextStages []stages.Stage       `json:"validNextStages"`
	Precache        *Precache            `json:"precache,omitempty"`
	History         []stages.StageRecord `json:"history,omitempty"`
	Message         string               `json:"message,omitempty"`
	UpdatedAt       time.Time            `json:"updatedAt"`
}
