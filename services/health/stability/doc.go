// Package stability runs stabilisation checks against a cluster's API and
// reports passed only when health has held for a window.
package stability
