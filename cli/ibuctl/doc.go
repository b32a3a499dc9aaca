// Package ibuctl is the user's command line for ibu: it prints and checks
// the event contract, publishes requests to NATS and runs a development
// hub. cmd/ibuctl only wires os.Args into Run.
package ibuctl
