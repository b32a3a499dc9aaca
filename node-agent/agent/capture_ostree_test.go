package agent_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"ibu.dev/node-agent/capture"
	"ibu.dev/node-agent/host/ostree"
	"ibu.dev/node-agent/host/ostreetest"
	"ibu.dev/shared/bus"
	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/stages"
	"ibu.dev/shared/testkit/natstest"
)

// A seed captured from a real ostree host and laid by another cluster's
// agent in Prep: the target deploys exactly the captured commit
// (`ostree rev-parse` on both sides).
func TestCapturedSeedDeploysOnRealOstree(t *testing.T) {
	seedSys := ostreetest.NewSysroot(t)
	_, hub := natstest.StartHub(t)
	obs, err := hub.ObjectStore(t.Context(), bus.ObjectStoreSeedArtifacts)
	if err != nil {
		t.Fatal(err)
	}
	h := &capture.OstreeHost{Sysroot: seedSys.Dir, Command: seedSys.Command, Stateroots: seedSys.Stateroots(),
		Cluster: capture.StaticCluster{Healthy: true}, Base: seedimage.SeedInfo{Version: seedVersion, Stateroot: newRoot},
		Stop: [][]string{{"true"}}, Start: [][]string{{"true"}}}
	res, err := capture.Run(t.Context(), h, obs, capture.Request{BuildID: "b1", WorkDir: t.TempDir(), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	blob, err := obs.GetBytes(t.Context(), "b1/ostree")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	ostreeTar, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	commit := res.Inventory.OstreeCommit

	f := newFixture(t, func(o *fixtureOpts) {
		o.ostreeTar = ostreeTar
		o.mutateSeed = func(i *seedimage.SeedInfo) { i.OstreeCommit = commit }
	})
	target := ostreetest.NewSysroot(t)
	ostreeAgent(t, f, target)
	f.waitPosition(prepDone, f.desire(stages.Prep))

	want := strings.TrimSpace(seedSys.Ostree("rev-parse", "--repo="+seedSys.Repo, seedSys.Commit))
	got := strings.TrimSpace(target.Ostree("rev-parse", "--repo="+target.Repo, ostree.RefPrefix+newRoot))
	if got != want || want != commit {
		t.Fatalf("rev-parse: target %s, seed %s, captured %s", got, want, commit)
	}
	wantStatus(t, target, "Prep", "rhcos@"+target.Commit[:8]+" "+newRoot+"@"+commit[:8])
}
