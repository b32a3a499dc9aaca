package fleet

import (
	"context"
	"fmt"

	"ibu.dev/shared/seedimage"
	"ibu.dev/shared/seedimage/seedsim"
)

// PushSeed builds a synthetic seed of version, listing n precache images
// (seedsim.New), and pushes it to ref.
func PushSeed(ctx context.Context, ref, version string, n int, opts ...seedimage.Option) error {
	synth, err := seedsim.New(version, n)
	if err != nil {
		return fmt.Errorf("synthetic seed %s: %w", version, err)
	}
	img, err := synth.Build()
	if err != nil {
		return fmt.Errorf("build seed %s: %w", version, err)
	}
	if _, err := seedimage.Push(ctx, ref, img, opts...); err != nil {
		return fmt.Errorf("push seed %s: %w", ref, err)
	}
	return nil
}
