// Package natsconn is the one NATS connection setting every ibu binary
// takes: the server URLs, credentials file, TLS CA and reply inbox prefix,
// each with one flag and one environment variable, their validation, and
// the nats.Options they make.
package natsconn
