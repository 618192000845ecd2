package reader

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/backfillhq/backfill/internal/jsonstr"
)

// The CSV object builder (precomputed keys, fast string and int paths) must
// write exactly what the original did: refAppendObject and refAppendCell
// are the originals, kept verbatim.

var refCells = map[string][]string{
	ColumnInt: {"0", "7", "-0", "+5", " 42 ", "007", "12a", "", "1704067200123", "123456789012345678",
		"1234567890123456789", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1e3", "٣", "\t9\n"},
	ColumnFloat: {"0", "-0", "1.5", "123.45", " 2.50 ", "1e300", "1e400", "NaN", "inf", "-1e-7", "0x1p-2", "x", "12345678901234567890"},
	ColumnBool:  {"true", "false", "1", "0", "t", "F", " TRUE ", "yes"},
	ColumnJSON:  {`["a","b"]`, ` {"k":1} `, `[`, `"s"`, `null`, `{"a":[1,2,{"b":"c"}]}`, "[\"\xff\"]"},
}

func refCell(r *rand.Rand, typ string) string {
	if r.IntN(6) == 0 {
		return ""
	}
	if c := refCells[typ]; c != nil && r.IntN(3) > 0 {
		return c[r.IntN(len(c))]
	}
	switch typ {
	case ColumnInt:
		return strconv.FormatInt(int64(r.Uint64())>>r.IntN(64), 10)
	case ColumnFloat:
		return strconv.FormatFloat(float64(r.IntN(1e6))/100, 'f', -1, 64)
	}
	return refRandString(r)
}

func TestCSVObjectMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	names := []string{"user_id", "time", "event_properties.amount", "event_properties.items", "event_properties.experiment.id",
		"event_properties.experiment.variant", "user_properties.seats", "user_properties.ok", "a..b", ".x", "q\"é.k\n",
		"p.q\xff", "z"}
	types := []string{"", ColumnString, ColumnInt, ColumnFloat, ColumnBool, ColumnJSON}
	rows, errs := 0, 0
	for round := range 200 {
		perm := r.Perm(len(names))
		header := make([]string, 0, len(names))
		colTypes := map[string]string{}
		for _, k := range perm[:1+r.IntN(len(names))] {
			header = append(header, names[k])
			colTypes[names[k]] = types[r.IntN(len(types))]
		}
		root, err := buildColumns(header, colTypes)
		if err != nil {
			continue
		}
		row := make([]string, len(header))
		for range 100 {
			for c, h := range header {
				row[c] = refCell(r, colTypes[h])
			}
			want, wantWrote, wantErr := refAppendObject(root, []byte("x"), row)
			got, gotWrote, gotErr := root.appendObject([]byte("x"), row)
			if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) || (wantErr == nil && (string(want) != string(got) || wantWrote != gotWrote)) {
				t.Fatalf("round %d, header %q, types %v, row %q:\n got %s %v %v\nwant %s %v %v",
					round, header, colTypes, row, got, gotWrote, gotErr, want, wantWrote, wantErr)
			}
			rows++
			if wantErr != nil {
				errs++
			}
		}
	}
	if errs == 0 || errs == rows {
		t.Fatalf("%d rows, %d with errors: want some of each", rows, errs)
	}
}

func TestIsCanonicalInt(t *testing.T) {
	for _, s := range append(refCells[ColumnInt], "1", "10", "99999999999999999", "-1", "00", "a", "9\x00") {
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if isCanonicalInt(s) && (err != nil || strconv.FormatInt(v, 10) != s) {
			t.Errorf("isCanonicalInt(%q) but ParseInt = %d, %v", s, v, err)
		}
	}
}

// Keep the imports the verbatim reference needs.
var (
	_ = fastjson.Validate
	_ = jsonstr.Append[string]
)

func refAppendObject(n *colNode, b []byte, row []string) (out []byte, wrote bool, err error) {
	b = append(b, '{')
	for _, k := range n.kids {
		mark := len(b)
		if wrote {
			b = append(b, ',')
		}
		b, _ = jsonstr.Append(b, k.name)
		b = append(b, ':')
		if k.col < 0 {
			var sub bool
			if b, sub, err = refAppendObject(k, b, row); err != nil {
				return b, false, err
			}
			if !sub {
				b = b[:mark]
				continue
			}
			wrote = true
			continue
		}
		cell := row[k.col]
		if cell == "" {
			b = b[:mark]
			continue
		}
		if b, err = refAppendCell(b, cell, k.typ); err != nil {
			return b, false, fmt.Errorf("column %q: %w", k.path(), err)
		}
		wrote = true
	}
	return append(b, '}'), wrote, nil
}
func refAppendCell(b []byte, cell, typ string) ([]byte, error) {
	t := strings.TrimSpace(cell)
	switch typ {
	case ColumnInt:
		v, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return b, fmt.Errorf("%q is not an int", cell)
		}
		return strconv.AppendInt(b, v, 10), nil
	case ColumnFloat:
		v, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return b, fmt.Errorf("%q is not a float", cell)
		}
		b, ok := appendFloat(b, v, 64)
		if !ok {
			return b, fmt.Errorf("%q is not a finite number", cell)
		}
		return b, nil
	case ColumnBool:
		v, err := strconv.ParseBool(t)
		if err != nil {
			return b, fmt.Errorf("%q is not a bool", cell)
		}
		return strconv.AppendBool(b, v), nil
	case ColumnJSON:
		if err := fastjson.Validate(t); err != nil {
			return b, fmt.Errorf("invalid JSON: %v", err)
		}
		return append(b, t...), nil
	}
	b, _ = jsonstr.Append(b, cell)
	return b, nil
}
