package validate

import (
	"strings"
	"testing"
)

// IsBlockedID's allocation-free path must agree with the plain definition.
func TestIsBlockedIDAgreesWithDefinition(t *testing.T) {
	ref := func(id string) bool { return blocked[strings.ToLower(strings.TrimSpace(id))] }
	var ids []string
	for id := range blocked {
		ids = append(ids, id, strings.ToUpper(id), " "+id+"\t", "\n"+strings.ToUpper(id[:1])+id[1:]+" ", id+"x", "x"+id)
	}
	ids = append(ids, "", " ", "user-1", "0b8f3c2e-6a51-4c3b-9d7e-2f1a4b5c6d7e", "00000000-0000-0000-0000-000000000001",
		"UN\u212aNOWN", "unknown\u00a0", "\u00a0null", "İnil", strings.Repeat("a", 100), " "+strings.Repeat(" ", 40)+"nil ")
	for _, id := range ids {
		if got, want := IsBlockedID(id), ref(id); got != want {
			t.Errorf("IsBlockedID(%q) = %v, want %v", id, got, want)
		}
	}
}

func FuzzIsBlockedID(f *testing.F) {
	for id := range blocked {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := IsBlockedID(id), blocked[strings.ToLower(strings.TrimSpace(id))]; got != want {
			t.Fatalf("IsBlockedID(%q) = %v, want %v", id, got, want)
		}
	})
}
