// Package events is the single source of truth for ibu's event contract: every
// CloudEvent type, the NATS subject it travels on, the JSON Schema of its data,
// and a strict decoder that refuses anything that does not match.
//
// One file per area holds the Go data structs and their registration (plan,
// cluster, seed, precache, backup, health, rejected); schemas/ holds one
// draft 2020-12 schema per type, kept in step with the structs by the tests.
package events
