// Package capture turns a clean seed cluster's host into the artifacts of a
// seed image: on a capture task from the seed-builder it reports the host's
// inventory, or quiesces the workloads, exports the booted stateroot's
// ostree commit, /var and the /etc changes as compressed tars into a
// JetStream object store, and always restarts the workloads afterwards.
package capture
