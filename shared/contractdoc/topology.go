package contractdoc

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/bus"
)

// Topology renders the JetStream streams, KV buckets and object stores that
// bus.EnsureTopology creates (with its default options) as a markdown table.
func Topology() string {
	var b strings.Builder
	b.WriteString("| kind | name | subjects | retention | max age | history | description |\n|---|---|---|---|---|---|---|\n")
	for _, s := range bus.StreamConfigs() {
		fmt.Fprintf(&b, "| stream | `%s` | `%s` | %s | %s | | %s |\n",
			s.Name, strings.Join(s.Subjects, "`, `"), retention(s.Retention), age(s.MaxAge), s.Description)
	}
	for _, kv := range bus.KeyValueConfigs() {
		fmt.Fprintf(&b, "| KV bucket | `%s` | `$KV.%s.>` | per key | %s | %d | %s |\n",
			kv.Bucket, kv.Bucket, age(kv.TTL), kv.History, kv.Description)
	}
	for _, o := range bus.ObjectStoreConfigs() {
		fmt.Fprintf(&b, "| object store | `%s` | `$O.%s.>` | objects | %s | | %s |\n",
			o.Bucket, o.Bucket, age(o.TTL), o.Description)
	}
	return b.String()
}

func retention(r jetstream.RetentionPolicy) string {
	switch r {
	case jetstream.WorkQueuePolicy:
		return "work queue (removed on ack)"
	case jetstream.InterestPolicy:
		return "interest"
	default:
		return "limits"
	}
}

func age(d time.Duration) string {
	if d == 0 {
		return "unlimited"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
