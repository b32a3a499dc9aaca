package seedsim_test

import (
	"testing"

	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
)

func TestSyntheticSeedIsAValidSeed(t *testing.T) {
	s, err := seedsim.New("4.16.9", 125)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Build()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := seedimage.New(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := seedimage.Verify(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	if got := seed.Info(); got.Version != "4.16.9" || got.Stateroot != "rhcos_4.16.9" || len(seed.PrecacheImages()) != 125 {
		t.Errorf("seed info %+v with %d images", got, len(seed.PrecacheImages()))
	}
	older := seedimage.ClusterInfo{Version: "4.14.38", Fingerprint: seedsim.Fingerprint()}
	if err := seedimage.Compatible(seed.Info(), older); err != nil {
		t.Errorf("a cluster with the same fingerprint refuses the seed: %v", err)
	}
}
