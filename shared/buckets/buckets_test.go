package buckets_test

import (
	"strings"
	"testing"

	"ibu.dev/shared/buckets"
)

func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	all := buckets.All()
	if len(all) != 7 {
		t.Fatalf("%d buckets, want 7", len(all))
	}
	for _, b := range all {
		if !strings.HasPrefix(b.Name, "IBU_") || seen[b.Name] {
			t.Errorf("bucket name %q: not IBU_ or twice", b.Name)
		}
		seen[b.Name] = true
		if b.Description == "" || b.Keys == "" || b.Value == "" || b.CreatedBy == "" {
			t.Errorf("%s: description, keys, value or creator missing: %+v", b.Name, b)
		}
		if b.Kind == buckets.KeyValue && b.History == 0 {
			t.Errorf("%s: no history", b.Name)
		}
	}
}

func TestCodecs(t *testing.T) {
	if _, err := buckets.Desired.Codec().Decode([]byte(`{}`)); err == nil {
		t.Error("an invalid desired state decoded")
	}
	raw, err := buckets.PullBudget.Codec().Decode([]byte("3"))
	if err != nil || string(raw) != "3" {
		t.Errorf("pull budget raw value: %q, %v", raw, err)
	}
}
