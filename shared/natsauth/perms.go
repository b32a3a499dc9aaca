package natsauth

import (
	"fmt"

	"github.com/nats-io/jwt/v2"

	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/pullbudget"
)

// SpokeInboxPrefix is the reply-inbox prefix of cluster's agent: a prefix
// of its own, since a shared _INBOX.> subscribe permission would let one
// spoke read another's replies (KV values among them).
func SpokeInboxPrefix(cluster string) string { return "_INBOX_" + cluster }

// HubDurables are the durable consumer names of the hub's services on the
// event stream; a spoke may create, read, inspect and delete its own
// ephemeral consumers there, and these names are denied to it so that it
// can neither steal from nor rewrite a service's consumer.
var HubDurables = []string{
	events.ServiceScheduler, events.ServiceSeedBuilder, events.ServicePrecache,
	events.ServiceBackupRestore, events.ServiceHealth, "demo-audit",
}

// SpokePermissions is what cluster's agent may do, and nothing more:
// read and watch its own IBU_DESIRED key, write its own IBU_STATUS and
// IBU_CLUSTERS keys, publish its own events and tasks, follow its own
// events (service answers), and
// receive on its own inbox prefix; and hold slots of the fleet's pull
// budget. No other cluster's keys or subjects, no
// stream or bucket administration.
func SpokePermissions(cluster string) (jwt.Permissions, error) {
	if err := events.ValidID(cluster); err != nil {
		return jwt.Permissions{}, fmt.Errorf("spoke permissions: %w", err)
	}
	kvStream := func(b string) string { return "KV_" + b }
	key := func(b string) string { return "$KV." + b + "." + cluster }
	desired, status, clusters := bus.BucketDesired, bus.BucketStatus, bus.BucketClusters
	ownEvents := "ibu.event." + cluster + ".>"
	pub := []string{
		// KV handles (js.KeyValue reads the bucket's stream info).
		"$JS.API.STREAM.INFO." + kvStream(desired),
		"$JS.API.STREAM.INFO." + kvStream(status),
		"$JS.API.STREAM.INFO." + kvStream(clusters),
		// Get of its own keys (the buckets allow direct gets, whose subject
		// names the key; STREAM.MSG.GET could not be limited per key).
		"$JS.API.DIRECT.GET." + kvStream(desired) + "." + key(desired),
		"$JS.API.DIRECT.GET." + kvStream(status) + "." + key(status),
		"$JS.API.DIRECT.GET." + kvStream(clusters) + "." + key(clusters),
		// Watch of its own desired key: an ordered consumer whose create
		// subject embeds the filter, checked by the server against the body.
		"$JS.API.CONSUMER.CREATE." + kvStream(desired) + ".*." + key(desired),
		"$JS.API.CONSUMER.DELETE." + kvStream(desired) + ".*",
		"$JS.FC." + kvStream(desired) + ".>",
		// Writes of its own status and inventory keys.
		key(status), key(clusters),
		// Its own events and tasks.
		ownEvents, "ibu.task.*." + cluster,
		// Following its own events (the services' answers): ordered
		// consumers filtered inside ibu.event.<cluster>.>.
		"$JS.API.CONSUMER.CREATE." + bus.StreamEvents + ".*." + ownEvents,
		"$JS.API.CONSUMER.MSG.NEXT." + bus.StreamEvents + ".*",
		"$JS.API.CONSUMER.INFO." + bus.StreamEvents + ".*",
		"$JS.API.CONSUMER.DELETE." + bus.StreamEvents + ".*",
		// The fleet's pull budget (precache): read the limits and slots,
		// take, renew and release slots (not set limits), and watch the
		// slots for a free one. Slots are shared by the fleet by design; a
		// spoke can hold at most what its own pulls ask for.
		"$JS.API.STREAM.INFO." + kvStream(pullbudget.Bucket),
		"$JS.API.DIRECT.GET." + kvStream(pullbudget.Bucket) + ".$KV." + pullbudget.Bucket + ".>",
		"$KV." + pullbudget.Bucket + ".slot.>",
		"$JS.API.CONSUMER.CREATE." + kvStream(pullbudget.Bucket) + ".*.$KV." + pullbudget.Bucket + ".slot.>",
		"$JS.API.CONSUMER.DELETE." + kvStream(pullbudget.Bucket) + ".*",
		"$JS.FC." + kvStream(pullbudget.Bucket) + ".>",
	}
	var deny []string
	for _, d := range HubDurables {
		deny = append(deny,
			"$JS.API.CONSUMER.CREATE."+bus.StreamEvents+"."+d+".>",
			"$JS.API.CONSUMER.MSG.NEXT."+bus.StreamEvents+"."+d,
			"$JS.API.CONSUMER.INFO."+bus.StreamEvents+"."+d,
			"$JS.API.CONSUMER.DELETE."+bus.StreamEvents+"."+d,
		)
	}
	var p jwt.Permissions
	p.Pub.Allow.Add(pub...)
	p.Pub.Deny.Add(deny...)
	p.Sub.Allow.Add(SpokeInboxPrefix(cluster) + ".>")
	return p, nil
}

// ServicePermissions is a hub service's: the whole ibu account.
func ServicePermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add(">")
	p.Sub.Allow.Add(">")
	return p
}
