// Package rollout is the fleet scheduler service: it accepts plan
// requests from IBU_REQUESTS, keeps every plan in IBU_PLANS, and drives each
// plan's clusters by writing their desired stages in IBU_DESIRED as their
// agents report in IBU_STATUS. The decisions are package planner's; this
// package does the I/O, the caches and the single-writer ownership.
package rollout
