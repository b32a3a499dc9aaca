package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"ibu.dev/shared/natsembed"
	"ibu.dev/shared/testkit/natstest"
)

func TestStartConnect(t *testing.T) {
	srv := natstest.Start(t, func(c *natsembed.Config) { c.MaxPayload = 2 << 20 })
	nc, js := natstest.Connect(t, srv.URL())
	if nc.MaxPayload() != 2<<20 {
		t.Fatalf("max payload %d", nc.MaxPayload())
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}}); err != nil {
		t.Fatal(err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil || info.Streams != 1 {
		t.Fatalf("account info %+v %v", info, err)
	}
}

func TestWaitFor(t *testing.T) {
	start := time.Now()
	natstest.WaitFor(t, time.Second, "time to pass", func() bool { return time.Since(start) > 20*time.Millisecond })
}
