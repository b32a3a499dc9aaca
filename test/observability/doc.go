// Package observability tests what operators see of a rollout: one trace
// per cluster upgrade (through a real OTLP/HTTP exporter into an in-process
// receiver), the Prometheus metrics, and the web dashboard in a real
// headless Chromium; and benchmarks the dashboard's server.
package observability
