// Package cmdhelp builds every ibu binary and reads its help, so that a
// binary that stops taking one of the shared NATS connection flags
// (natsconn.Flags) fails a test rather than a deployment.
package cmdhelp
