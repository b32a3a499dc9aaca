package manifest

import "testing"

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // kinds
		wantErr bool
	}{
		{"two documents", "apiVersion: v1\nkind: A\nmetadata: {name: a}\n---\napiVersion: v1\nkind: B\n", []string{"A", "B"}, false},
		{"empty documents skipped", "---\n\n---\napiVersion: v1\nkind: A\n---\n# only a comment\n", []string{"A"}, false},
		{"json", `{"apiVersion":"v1","kind":"A"}`, []string{"A"}, false},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", nil, true},
		{"not yaml", "a: [b\n", nil, true},
		{"scalar", "just text\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d objects, want %d", len(got), len(tc.want))
			}
			for i, o := range got {
				if o.GetKind() != tc.want[i] {
					t.Errorf("object %d kind %q, want %q", i, o.GetKind(), tc.want[i])
				}
			}
		})
	}
}
