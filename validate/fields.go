package validate

import "strings"

// Kind is the JSON type Amplitude expects for a known top-level event field.
type Kind uint8

const (
	// KindUnknown marks a key that is not a documented Amplitude field.
	KindUnknown Kind = iota
	// KindString is a JSON string.
	KindString
	// KindInt is an integer JSON number (time, session_id, event_id, quantity).
	KindInt
	// KindFloat is any JSON number (price, revenue, location_lat/lng).
	KindFloat
	// KindBool is true or false.
	KindBool
	// KindObject is a JSON object (event_properties, groups, plan, ...).
	KindObject
)

// String names the kind as it appears in error messages.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "a string"
	case KindInt:
		return "an integer"
	case KindFloat:
		return "a number"
	case KindBool:
		return "a boolean"
	case KindObject:
		return "an object"
	}
	return "unknown"
}

// fieldList is the table of amplitude-api.md §3, in the canonical order used
// when an event is re-encoded.
var fieldList = []struct {
	name string
	kind Kind
}{
	{"user_id", KindString},
	{"device_id", KindString},
	{"event_type", KindString},
	{"time", KindInt},
	{"insert_id", KindString},
	{"session_id", KindInt},
	{"event_id", KindInt},
	{"app_version", KindString},
	{"version_name", KindString},
	{"platform", KindString},
	{"os_name", KindString},
	{"os_version", KindString},
	{"device_brand", KindString},
	{"device_manufacturer", KindString},
	{"device_model", KindString},
	{"carrier", KindString},
	{"country", KindString},
	{"region", KindString},
	{"city", KindString},
	{"dma", KindString},
	{"language", KindString},
	{"location_lat", KindFloat},
	{"location_lng", KindFloat},
	{"ip", KindString},
	{"user_agent", KindString},
	{"idfa", KindString},
	{"idfv", KindString},
	{"adid", KindString},
	{"android_id", KindString},
	{"android_app_set_id", KindString},
	{"price", KindFloat},
	{"quantity", KindInt},
	{"revenue", KindFloat},
	{"productId", KindString},
	{"revenueType", KindString},
	{"currency", KindString},
	{"library", KindString},
	{"partner_id", KindString},
	{"plan", KindObject},
	{"ingestion_metadata", KindObject},
	{"$skip_user_properties_sync", KindBool},
	{"event_properties", KindObject},
	{"user_properties", KindObject},
	{"groups", KindObject},
	{"group_properties", KindObject},
}

var fieldKinds = func() map[string]Kind {
	m := make(map[string]Kind, len(fieldList))
	for _, f := range fieldList {
		m[f.name] = f.kind
	}
	return m
}()

// FieldKind returns the expected kind of the top-level event field name, or
// KindUnknown when name is not a documented Amplitude event field.
func FieldKind(name string) Kind { return fieldKinds[name] }

// Fields returns the documented top-level Amplitude event fields in the
// canonical order used when events are re-encoded.
func Fields() []string {
	out := make([]string, len(fieldList))
	for i, f := range fieldList {
		out[i] = f.name
	}
	return out
}

// reserved event types must not be sent (amplitude-api.md §3).
var reserved = map[string]bool{
	"[Amplitude] Start Session":        true,
	"[Amplitude] End Session":          true,
	"[Amplitude] Revenue":              true,
	"[Amplitude] Revenue (Verified)":   true,
	"[Amplitude] Revenue (Unverified)": true,
	"[Amplitude] Merged User":          true,
}

// IsReservedEventType reports whether t is an event type Amplitude reserves.
func IsReservedEventType(t string) bool { return reserved[t] }

// blocked id values (amplitude-api.md §4), lower-case.
var blocked = map[string]bool{
	"anonymous": true, "nil": true, "none": true, "null": true, "n/a": true,
	"na": true, "undefined": true, "unknown": true, `""`: true,
	"00000000-0000-0000-0000-000000000000": true, "{}": true,
	"lmy47d": true, "0": true, "-1": true,
}

// IsBlockedID reports whether id is on Amplitude's blocked id list. The
// comparison ignores case and surrounding spaces.
func IsBlockedID(id string) bool {
	// The usual id is ASCII and not blocked: answer without allocating.
	t := strings.Trim(id, " \t\n\v\f\r")
	for i := 0; i < len(t); i++ {
		if t[i] >= 0x80 {
			return blocked[strings.ToLower(strings.TrimSpace(id))]
		}
	}
	// ASCII: lowering keeps the length.
	if len(t) == 0 || len(t) > maxBlockedLen || !blockedLen[len(t)] || !blockedFirst[t[0]] {
		return false
	}
	var low [maxBlockedLen]byte
	for i := 0; i < len(t); i++ {
		c := t[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	return blocked[string(low[:len(t)])]
}

// blockedLen and blockedFirst are the lengths and first bytes (either
// case) of the blocked ids: most ids are ruled out without hashing them.
var blockedLen, blockedFirst = func() (l [maxBlockedLen + 1]bool, f [256]bool) {
	for id := range blocked {
		l[len(id)] = true
		f[id[0]] = true
		f[strings.ToUpper(id[:1])[0]] = true
	}
	return l, f
}()

// maxBlockedLen is the length of the longest blocked id.
const maxBlockedLen = len("00000000-0000-0000-0000-000000000000")
