package emulator

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// sameAsRef fails unless parseBody and the fastjson-based refParseBody agree
// on body: outcome, answer, event count, API key and every event's bytes.
func sameAsRef(t testing.TB, sc *scanner, p *fastjson.Parser, body []byte, limit int, keys map[string]struct{}) {
	t.Helper()
	k1, e1, r1, n1, ok1 := parseBody(sc, body, limit, keys)
	k2, e2, r2, n2, ok2 := refParseBody(p, body, limit, keys)
	if ok1 != ok2 || n1 != n2 || r1.status != r2.status || !bytes.Equal(r1.body, r2.body) || r1.msg != r2.msg {
		t.Fatalf("body %q:\nscanner   ok=%v n=%d %d %s %q\nreference ok=%v n=%d %d %s %q",
			trunc(body), ok1, n1, r1.status, r1.body, r1.msg, ok2, n2, r2.status, r2.body, r2.msg)
	}
	if !bytes.Equal(k1, k2) || len(e1) != len(e2) {
		t.Fatalf("body %q: api key %q/%q, %d/%d events", trunc(body), k1, k2, len(e1), len(e2))
	}
	same := func(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }
	for i := range e1 {
		a, b := &e1[i], &e2[i]
		if !same(a.raw, b.raw) || !same(a.device, b.device) || !same(a.user, b.user) || !same(a.insertID, b.insertID) {
			t.Fatalf("body %q: event %d differs:\nscanner   %q %q %q %q\nreference %q %q %q %q", trunc(body), i,
				a.raw, a.device, a.user, a.insertID, b.raw, b.device, b.user, b.insertID)
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 600 {
		return append(b[:300:300], append([]byte("…"), b[len(b)-300:]...)...)
	}
	return b
}

// Edge cases of fastjson's grammar and lookups, each as a whole body.
var scanCases = []string{
	``, ` `, `{}`, `[]`, `null`, `"x"`, `1`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1}x`, `{"a":1} `,
	"\t{\"api_key\":\"k\",\"events\":[]}\r\n", `{"api_key":"k","events":[]}`, `{"api_key":"k","events":{}}`,
	`{"api_key":"","events":[]}`, `{"api_key":1,"events":[]}`, `{"api_key":null,"events":[]}`, `{"events":[]}`,
	`{"api_key":"k"}`, `{"api_key":"k","events":null}`, `{"api_key":"k","events":[1]}`, `{"api_key":"k","events":[{},[]]}`,
	`{"api_key":"k","events":[{}]}`, `{"api_key":"k","events":[{"event_type":"e","device_id":"device-1"}]}`,
	`{"api_key":"k\u0041","events":[{"event_type":"e","device_id":"device-1"}]}`,
	`{"api\u005fkey":"a","api_key":"b","events":[{"event_type":"e","device_id":"device-1"}]}`,
	`{"api\u005fkey":"a","events":[{"event_type":"e","device_id":"device-1"}],"ev\u0065nts":[1]}`,
	`{"api_key":"k","ev\u0065nts":[{"event_type":"e","device_id":"dev-a1"}],"events":[{"event_type":"f","device_id":"dev-b1"},{}]}`,
	`{"api\u005fkey":"k","ev\u0065nts":[{"event_type":"e","device_id":"dev-a1"}],"events":[{"event_type":"f","device_id":"dev-b1"},{}]}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"device-1"}],"events":[1]}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"options":{"min_id_length":3}}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"options":{"min_id_length":"3"}}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"options":{"min_id_length":3.0}}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"options":{"min_id_length":-3}}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"options":{"min_id_length":99999999999999999999}}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"options":{"min\u005fid_length":3}}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"options":{"min\u005fid_length":3,"min_id_length":9}}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"options":[3]}`,
	`{"api_key":"k","events":[{"event_type":"e","device_id":"dev"}],"opti\u006fns":{"min_id_length":3},"options":{}}`,
	`{"api\u005fkey":"k","events":[{"event_type":"e","device_id":"dev"}],"opti\u006fns":{"min_id_length":3},"options":{}}`,
	`{"api_key":"k","events":[{"event\u005ftype":"e","device\u005fid":"d\u00e9vice-1","event_type":null,"time":-0}]}`,
	`{"api_key":"k","events":[{"event_type":"[Amplitude] Revenue","user_id":"null","device_id":"00000000-0000-0000-0000-000000000000"}]}`,
	`{"api_key":"k","events":[{"event_type":"","user_id":12345,"device_id":[],"time":"1","insert_id":5}]}`,
	`{"api_key":"k","events":[{"event_type":7,"user_id":"ab","device_id":"cd","time":1.5,"insert_id":""}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"ab","time":1e3,"insert_id":null}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"abcdef","time":9223372036854775807}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"abcdef","time":9223372036854775808}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"abcdef","time":-9223372036854775808}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"abcdef","time":-123456789012345678}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"ab\"cdef\\","insert_id":"\ud800x"}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"abc` + "\x01" + `def"}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"abc\x"}]}`, `{"api_key":"k","events":[{"event_type":"e","user_id":"abc\u12"}]}`,
	`{"api_key":"k","events":[{"event_type":"e","user_id":"abc\u12G4"}]}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`,
	`{"a":1e+}`, `{"a":.5}`, `{"a":-0.5E-7}`, `{"a":tru}`, `{"a":nul}`, `{"a":NaN}`, `{"a":Infinity}`, `{"a":+1}`,
	`{"a":"\/\b\f\n\r\t"}`, `{"a` + "\x1f" + `":1}`, `{"a":[1 2]}`, `{"a":[1,]}`, `{"a":{"b":1 "c":2}}`,
	`{"api_key":"k","events":[{"device_id":"device-1","event_type":"e"} , {"device_id":"device-1","event_type":"e"}
]}`,
}

func TestScanMatchesFastjson(t *testing.T) {
	var sc scanner
	var p fastjson.Parser
	keys := map[string]struct{}{"k": {}}
	for _, c := range scanCases {
		for _, limit := range []int{0, 60} {
			sameAsRef(t, &sc, &p, []byte(c), limit, nil)
			sameAsRef(t, &sc, &p, []byte(c), limit, keys)
		}
	}
	// Nesting around fastjson.MaxDepth, inside an event and at the top.
	for _, d := range []int{296, 297, 298, 299, 300} {
		deep := strings.Repeat("[", d) + strings.Repeat("]", d)
		sameAsRef(t, &sc, &p, []byte(`{"api_key":"k","events":[{"event_type":"e","device_id":"device-1","p":`+deep+`}]}`), 0, nil)
		sameAsRef(t, &sc, &p, []byte(`{"api_key":"k","events":[],"p":`+deep+`}`), 0, nil)
		deep = strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d)
		sameAsRef(t, &sc, &p, []byte(`{"api_key":"k","events":[{"event_type":"e","device_id":"device-1","p":`+deep+`}]}`), 0, nil)
	}
	// Event counts around the limit.
	for _, n := range []int{MaxEventsPerRequest, MaxEventsPerRequest + 1} {
		for _, bad := range []string{"", "1"} {
			evs := strings.Repeat(`{"event_type":"e","device_id":"device-1"},`, n-1) + `{"event_type":"e","device_id":"device-1"}`
			if bad != "" {
				evs = bad + "," + evs[strings.IndexByte(evs, '}')+2:]
			}
			sameAsRef(t, &sc, &p, []byte(`{"api_key":"k","events":[`+evs+`]}`), 0, nil)
		}
	}
}

// randomBody builds a request body from pieces that exercise the
// scanner's cases: escapes, duplicates, odd types, blocked and short ids.
func randomBody(r *rand.Rand) []byte {
	pick := func(s ...string) string { return s[r.IntN(len(s))] }
	str := func() string {
		return pick(`"device-12345"`, `"user-1"`, `"ab"`, `""`, `"null"`, `"N/A"`, `"d\u00e9vice-1"`, `"x\\y\"z-long"`,
			`"\ud83d\ude00\ud83d"`, `"éèà-ü"`, `"0"`, `"  spaces  "`, `"\u0000abcde"`)
	}
	val := func() string {
		return pick(str(), str(), `null`, `12`, `-0`, `1.5`, `2e3`, `true`, `false`, `[]`, `{}`, `{"a":[1,{"b":null}]}`,
			`1704067200000`, `99999999999999999999`, `-9223372036854775808`)
	}
	key := func() string {
		return pick(`"event_type"`, `"user_id"`, `"device_id"`, `"time"`, `"insert_id"`, `"event\u005ftype"`,
			`"device\u005fid"`, `"user\u005Fid"`, `"insert_id"`, `"platform"`, `"event_properties"`, `"t\u0069me"`)
	}
	event := func() string {
		if r.IntN(30) == 0 {
			return val()
		}
		var sb strings.Builder
		sb.WriteString("{")
		for i := range r.IntN(7) {
			if i > 0 {
				sb.WriteString(pick(",", ", ", ",\n"))
			}
			k, v := key(), val()
			switch k {
			case `"event_type"`:
				v = pick(`"Product Viewed"`, `"[Amplitude] Revenue"`, v)
			case `"time"`:
				v = pick(`1704067200000`, v)
			}
			sb.WriteString(k + ":" + v)
		}
		sb.WriteString("}")
		return sb.String()
	}
	var members []string
	if r.IntN(10) > 0 {
		members = append(members, pick(`"api_key":"k"`, `"api_key":"other"`, `"api\u005fkey":"k"`, `"api_key":""`, `"api_key":3`, `"api_key":"\u006b"`))
	}
	if r.IntN(10) > 0 {
		evs := make([]string, r.IntN(6))
		for i := range evs {
			evs[i] = event()
		}
		members = append(members, pick(`"events"`, `"events"`, `"ev\u0065nts"`)+":["+strings.Join(evs, ",")+"]")
	}
	if r.IntN(3) == 0 {
		members = append(members, pick(`"options"`, `"opti\u006fns"`)+":"+
			pick(`{"min_id_length":`+pick("1", "2", "3", "0", "-1", "1.0", `"2"`, "null")+"}", `[]`, `{"min\u005fid_length":2}`, `1`))
	}
	for range r.IntN(3) {
		members = append(members, pick(`"events":[]`, `"api_key":"other"`, `"x":`+val(), `"options":{"min_id_length":2}`))
	}
	r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	return []byte(pick("", " ", "\n") + "{" + strings.Join(members, pick(",", " , ")) + "}" + pick("", " ", "\t\n"))
}

// mutate damages b in a few random places.
func mutate(r *rand.Rand, b []byte) []byte {
	b = bytes.Clone(b)
	const alphabet = "{}[]:,\"\\ \n\t0123456789-+.eEtrufalsn/u\x00\x1f\x7f\xc3\xa9abcdef"
	for range 1 + r.IntN(3) {
		if len(b) == 0 {
			break
		}
		i := r.IntN(len(b))
		switch r.IntN(4) {
		case 0:
			b[i] = alphabet[r.IntN(len(alphabet))]
		case 1:
			b = append(b[:i], b[i+1:]...)
		case 2:
			b = append(b[:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, b[i:]...)...)
		case 3:
			b = b[:i]
		}
	}
	return b
}

func TestScanMatchesFastjsonRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var sc scanner
	var p fastjson.Parser
	keys := map[string]struct{}{"k": {}}
	n := 30000
	if testing.Short() {
		n = 3000
	}
	for i := range n {
		b := randomBody(r)
		if i%2 == 1 {
			b = mutate(r, b)
		}
		k := keys
		if i%3 == 0 {
			k = nil
		}
		sameAsRef(t, &sc, &p, b, 0, k)
	}
}

func FuzzScan(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		f.Add(randomBody(r))
	}
	var sc scanner
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAsRef(t, &sc, &p, b, 0, nil)
	})
}

// The workload body must be read the same way as well.
func TestScanWorkloadBody(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(`{"api_key":"k","events":[`)
	for i := range MaxEventsPerRequest {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"user_id":"user-%08d","device_id":"0c6f3a2e-%012d","event_type":"Product Viewed","time":%d,"insert_id":"b-%d",`+
			`"event_properties":{"path":"/p/%d","amount":%d.99,"items":["sku-%d","sku-17"],"experiment":{"id":"exp-3"}}}`, i%50, i%70, 1704067200000+i, i, i, i, i)
	}
	sb.WriteString(`],"options":{"min_id_length":5}}`)
	var sc scanner
	var p fastjson.Parser
	sameAsRef(t, &sc, &p, []byte(sb.String()), 0, nil)
}
