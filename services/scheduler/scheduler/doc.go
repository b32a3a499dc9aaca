// Package scheduler turns a fleet upgrade plan into per-cluster desired
// stages with a sliding window, canaries, failure policy and maintenance
// windows, keeping all of its state in JetStream. Built by issue 5.
package scheduler
