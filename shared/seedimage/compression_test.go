package seedimage

import "testing"

func TestCompressionMediaTypes(t *testing.T) {
	for _, c := range []struct {
		role Role
		comp Compression
		want string
	}{
		{RoleOstree, Gzip, "application/vnd.ibu.seed.ostree.v1.tar+gzip"},
		{RoleOstree, Zstd, "application/vnd.ibu.seed.ostree.v1.tar+zstd"},
		{RoleVar, Zstd, "application/vnd.ibu.seed.var.v1.tar+zstd"},
		{RoleMetadata, Zstd, ""}, // the metadata layer is always gzip
		{Role("kernel"), Gzip, ""},
		{RoleEtc, Compression("lz4"), ""},
	} {
		if got := string(c.role.MediaTypeFor(c.comp)); got != c.want {
			t.Errorf("%s/%s: %q, want %q", c.role, c.comp, got, c.want)
		}
		if c.want != "" && !c.role.Accepts(c.role.MediaTypeFor(c.comp)) {
			t.Errorf("%s does not accept %s", c.role, c.want)
		}
	}
	if RoleVar.Accepts(RoleEtc.MediaType()) || RoleEtc.Accepts("") {
		t.Error("a role accepts another role's media type or none")
	}
	for in, want := range map[string]Compression{"": Gzip, "gzip": Gzip, "zstd": Zstd} {
		if got, err := ParseCompression(in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseCompression("xz"); err == nil {
		t.Error("ParseCompression(xz) accepted")
	}
}
