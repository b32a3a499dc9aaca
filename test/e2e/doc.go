// Package e2e runs the whole system on a simulated fleet: a real embedded
// JetStream, a real in-process OCI registry with a seed image, a real node
// agent per cluster on a simulated host, and the real scheduler (in-process
// or as a separate process that the tests kill).
package e2e
