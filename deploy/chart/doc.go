// Package chart lints, packages and installs ibu's Helm charts
// (charts/ibu, the hub; charts/ibu-agent, a spoke) with the Helm SDK, so
// that `make chart` and the tests need no helm binary.
package chart
