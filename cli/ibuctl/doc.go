// Package ibuctl is the user's command line for ibu: it prints and checks
// the event contract, publishes requests to NATS, runs a development hub,
// and runs the demo. cmd/ibuctl only wires os.Args into Run.
package ibuctl
