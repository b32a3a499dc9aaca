// Package planner holds the fleet scheduler's decisions as pure functions:
// it validates a plan request, resolves its clusters, and reconciles a
// plan (IBU_PLANS) against its clusters' statuses (IBU_STATUS) into the
// next plan and the desired stages to write (IBU_DESIRED). It does no I/O,
// starts no goroutines and takes the time as an argument.
package planner
