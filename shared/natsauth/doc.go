// Package natsauth issues NATS credentials for an ibu hub in NATS's
// decentralised JWT mode: one operator, a system account, and one ibu
// account (with JetStream) under which every hub service and every spoke
// gets a user. A spoke's user may touch only its own cluster's keys and
// subjects (SpokePermissions); credentials are issued offline, without
// restarting the server, and revoked by pushing the re-signed account JWT
// to the servers (PushAccount).
package natsauth
