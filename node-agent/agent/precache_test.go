package agent_test

import (
	"context"
	"slices"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"ibu.dev/node-agent/agent"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/events"
	"ibu.dev/shared/stages"
)

// A test stands in for the precache service: it plans only the images the
// agent says it lacks, and the agent pulls exactly the plan.
func TestPrecacheFollowsTheServicePlan(t *testing.T) {
	f := newFixture(t, func(o *fixtureOpts) { o.services = agent.Services{Precache: true} })
	all := seedImages()
	f.spoke.Images = simImagesWith(all[0]) // already on the node
	var got events.PrecacheRequested
	sub, err := bus.Consume(t.Context(), f.js, bus.StreamTasks, "precache", func(ctx context.Context, e cloudevents.Event) error {
		req, err := events.DataAs[events.PrecacheRequested](e)
		if err != nil {
			return bus.Permanent(err)
		}
		got = req
		plan := events.PrecachePlanned{ClusterID: req.ClusterID, PlanID: req.PlanID, Generation: req.Generation, Concurrency: 2}
		for _, img := range all[:4] { // the service leaves one out (say, mirrored elsewhere)
			if !slices.Contains(req.PresentImages, img) {
				plan.Images = append(plan.Images, events.PullImage{Image: img})
			}
		}
		return bus.NewPublisher(f.js).Answer(ctx, "/services/precache", e, plan)
	}, bus.ConsumeService(events.ServicePrecache), bus.ConsumeFilterSubjects("ibu.task.precache.>"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	f.start()
	st := f.waitPosition(prepDone, f.desire(stages.Prep))
	if !slices.Equal(got.PresentImages, all[:1]) || got.SeedImage != f.seedRef {
		t.Errorf("precache request %+v", got)
	}
	if f.spoke.Images.Pulls() != 3 {
		t.Errorf("pulled %d images, want the 3 the plan listed", f.spoke.Images.Pulls())
	}
	if st.Precache.Pulled != 4 || st.Precache.Total != 4 {
		t.Errorf("progress %s", st.Precache)
	}

	// Abort removes what Prep pulled, and only that.
	f.waitPosition(stages.IdlePosition, f.desire(stages.Idle))
	inv, _ := f.spoke.Images.Inventory(t.Context())
	if !slices.Equal(inv, all[:1]) {
		t.Errorf("inventory after abort %v, want only the image that was there before", inv)
	}
}
