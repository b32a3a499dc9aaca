// Package fleet wires a simulated fleet in one process (its hub from
// natsembed.StartHub): an in-process OCI registry, and N clusters, each a
// real node agent on a simulated host. The demo, test/cmd/fleetbench and
// the end-to-end suites in test/e2e start their fleets with it.
package fleet
