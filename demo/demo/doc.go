// Package demo runs ibu's main job end to end in one process on real
// parts (hub, seed-builder, scheduler, precache, a node agent per
// simulated cluster) and prints what happened; cmd/ibu-demo is its main.
package demo
