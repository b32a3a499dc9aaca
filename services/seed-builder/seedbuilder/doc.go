// Package seedbuilder captures a clean seed cluster through its node agent and
// builds, pushes and verifies the layered seed image. Built by issue 4.
package seedbuilder
