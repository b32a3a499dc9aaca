// Package agent is the node agent: it runs one cluster's image-based upgrade on
// its host (stateroots, pivot, reboot, rollback) from a journal that survives
// crashes and reboots, and reports every stage transition.
package agent
