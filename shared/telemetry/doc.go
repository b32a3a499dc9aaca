// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_*
// environment, carries trace context inside CloudEvents (the distributed
// tracing extension) so one trace follows a cluster across services and
// reboots, and builds log/slog loggers that stamp trace and span ids.
package telemetry
