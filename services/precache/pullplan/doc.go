// Package pullplan plans the container image pulls of a cluster in Prep:
// only what the node lacks, shared layers first, within a fleet-wide pull
// budget.
package pullplan
