// Package hubbench measures the hub's NATS with a fleet of spokes as a
// real fleet connects: each spoke on its own connection with its own
// credentials (JWT mode), watching its own desired key, against a
// nats-server process of its own (so its memory is the server's alone).
package hubbench
