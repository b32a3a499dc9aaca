// Package contract holds cross-package checks of ibu's event contract
// against the JetStream topology: every event type travels on a subject that
// exactly one stream captures, and that stream is the one its scope names.
package contract
