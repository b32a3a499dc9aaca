// Package bus carries ibu's CloudEvents over NATS JetStream: the streams and
// KV buckets every service relies on (EnsureTopology), the binary-mode
// CloudEvents NATS binding (ToMsg/FromMsg), an acked, deduplicated
// Publisher, a Consume loop that acks, retries with backoff and dead-letters
// what it cannot handle, and compare-and-set updates of KV entries.
package bus
