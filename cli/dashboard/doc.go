// Package dashboard serves ibu's read-only web dashboard: plans with
// per-step progress, clusters per stage and state, failures with their
// reasons, and a cluster view with its stage timeline, fed live from the
// hub's KV buckets and relayed to browsers as batched server-sent events.
package dashboard
