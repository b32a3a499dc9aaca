package fleet

import (
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/natsconn"
)

// Connect opens a NATS connection named name to url that reconnects
// forever, and its JetStream.
func Connect(url, name string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	c := natsconn.Config{URL: url, Name: name}
	return c.JetStream(append([]nats.Option{nats.MaxReconnects(-1), nats.Timeout(10 * time.Second)}, opts...)...)
}
