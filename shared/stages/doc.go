// Package stages is the per-cluster image-based-upgrade state machine: the
// stages and states a cluster can be in, which desired stage may follow
// which, what each move means (abort, finalize, resume...), and the
// conditions and history the node agent reports. It is pure: no I/O.
package stages
