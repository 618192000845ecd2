//go:build unix

package crashtest_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/klauspost/compress/gzip"

	"github.com/backfillhq/backfill/fixtures/fixturegen"
)

// silencedDevice is a device the emulator answers "400 silenced" for: its
// events are valid locally and dead-lettered by the server stage.
const silencedDevice = "device-silenced-77"

// recKey names one source record: the object's file name and its 0-based
// record index.
type recKey struct {
	file   string
	record int64
}

// inputSet is a generated input directory and what a run of it must do.
type inputSet struct {
	dir string
	// valid holds the insert_id of every record Amplitude must accept.
	valid map[string]bool
	// invalid holds every record that must be dead-lettered, with why.
	invalid map[recKey]string
	// ids holds, per file name, the insert_id of each record ("" for an
	// invalid record).
	ids map[string][]string
	// total is the number of records in all files.
	total int
}

func (in *inputSet) addValid(file string, record int64, id string) {
	if in.valid[id] {
		panic("duplicate generated insert_id " + id)
	}
	in.valid[id] = true
	in.add(file, record, id)
}

func (in *inputSet) addInvalid(file string, record int64, why string) {
	in.invalid[recKey{file, record}] = why
	in.add(file, record, "")
}

func (in *inputSet) add(file string, record int64, id string) {
	if int64(len(in.ids[file])) != record {
		panic(fmt.Sprintf("%s: record %d added out of order", file, record))
	}
	in.ids[file] = append(in.ids[file], id)
	in.total++
}

// csvTypes is the --csv-types value that makes the CSV files decode like
// the other formats.
func csvTypes() string {
	var kv []string
	for k, v := range fixturegen.CSVColumnTypes {
		kv = append(kv, k+":"+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ",")
}

// genInput writes a multi-format input into dir (file names sort in
// processing order) with n valid events per large file.
func genInput(dir string, n int) (*inputSet, error) {
	in := &inputSet{dir: dir, valid: map[string]bool{}, invalid: map[recKey]string{}, ids: map[string][]string{}}
	steps := []struct {
		name string
		fn   func(in *inputSet, path string, seed int64, n int) error
		n    int
	}{
		{"01-events.jsonl", writeJSONL, n},
		{"02-events.jsonl.gz", writeJSONL, n},
		{"03-events.csv", writeCSV, n * 4 / 5},
		{"04-events.json", writeArray, n / 4},
		{"05-events.parquet", writeParquet, n},
	}
	for i, s := range steps {
		if err := s.fn(in, filepath.Join(dir, s.name), int64(100+i), s.n); err != nil {
			return nil, fmt.Errorf("generate %s: %w", s.name, err)
		}
	}
	return in, nil
}

// badJSON are invalid JSON-lines records, one per rejection path: decode,
// validate and the server's silenced answer.
var badJSON = []struct{ why, line string }{
	{"decode", `{"event_type": "broken", "device_id": "device-broken", "time": 17040`},
	{"missing event_type", `{"device_id":"device-001","time":1704067200000,"insert_id":"bad-noevent-%d"}`},
	{"short ids", `{"event_type":"x","user_id":"u1","time":1704067200000,"insert_id":"bad-short-%d"}`},
	{"bad time", `{"event_type":"x","device_id":"device-002","time":"last tuesday","insert_id":"bad-time-%d"}`},
	{"silenced", `{"event_type":"x","device_id":"` + silencedDevice + `","time":1704067200000,"insert_id":"silenced-%d"}`},
}

// every returns whether record i of a file gets an invalid record before
// it: about one in 250, deterministic per seed.
func every(rng *rand.Rand) bool { return rng.IntN(250) == 0 }

func writeJSONL(in *inputSet, path string, seed int64, n int) error {
	name := filepath.Base(path)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	var zw *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		zw = gzip.NewWriter(f)
		w = zw
	}
	bw := bufio.NewWriter(w)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	g := fixturegen.NewGenerator(fixturegen.Options{N: n, Seed: seed})
	var rec int64
	for e, ok := g.Next(); ok; e, ok = g.Next() {
		if every(rng) {
			b := badJSON[int(rec)%len(badJSON)]
			line := b.line
			if strings.Contains(line, "%d") {
				line = fmt.Sprintf(line, seed*1_000_000+rec)
			}
			bw.WriteString(line + "\n")
			in.addInvalid(name, rec, b.why)
			rec++
		}
		bw.Write(e.JSON())
		bw.WriteByte('\n')
		in.addValid(name, rec, e.InsertID)
		rec++
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return f.Close()
}

// writeCSV re-writes fixturegen's CSV with invalid rows mixed in.
func writeCSV(in *inputSet, path string, seed int64, n int) error {
	name := filepath.Base(path)
	var buf bytes.Buffer
	if err := fixturegen.Write(&buf, "csv", fixturegen.Options{N: n, Seed: seed}); err != nil {
		return err
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		return err
	}
	var out bytes.Buffer
	cw := csv.NewWriter(&out)
	cw.Write(rows[0])
	insertCol := slices.Index(rows[0], "insert_id")
	bad := [][]string{
		{"user-bad-csv", "device-bad-csv", "x", "not-a-number", "bad-csv-time", "", "", "", "", ""},
		{"user-bad-csv", "device-bad-csv", "", "1704067200000", "bad-csv-noevent", "", "", "", "", ""},
		{"user-bad-csv", "device-bad-csv", "x", "1704067200000"}, // too few fields
		{"u", "d", "x", "1704067200000", "bad-csv-short", "", "", "", "", ""},
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	var rec int64
	for _, row := range rows[1:] {
		if every(rng) {
			cw.Write(bad[int(rec)%len(bad)])
			in.addInvalid(name, rec, "csv")
			rec++
		}
		cw.Write(row)
		in.addValid(name, rec, row[insertCol])
		rec++
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// writeArray writes a JSON array file (all records valid).
func writeArray(in *inputSet, path string, seed int64, n int) error {
	opts := fixturegen.Options{N: n, Seed: seed}
	g := fixturegen.NewGenerator(opts)
	var rec int64
	for e, ok := g.Next(); ok; e, ok = g.Next() {
		in.addValid(filepath.Base(path), rec, e.InsertID)
		rec++
	}
	return fixturegen.WriteFile(path, opts)
}

// writeParquet writes fixturegen events plus invalid rows, in row groups of
// 1,500 rows, with fixturegen's schema and row writer.
func writeParquet(in *inputSet, path string, seed int64, n int) error {
	name := filepath.Base(path)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(1500))
	fw, err := pqarrow.NewFileWriter(fixturegen.ParquetSchema, struct{ io.Writer }{f}, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, fixturegen.ParquetSchema)
	defer b.Release()
	row := func(user, device, typ string, t int64, id string, p *fixturegen.Props) {
		fixturegen.AppendParquetRow(b, fixturegen.Event{UserID: user, DeviceID: device, EventType: typ, Time: t, InsertID: id, Props: p})
	}
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		return fw.WriteBuffered(rec)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	g := fixturegen.NewGenerator(fixturegen.Options{N: n, Seed: seed})
	var rec int64
	for e, ok := g.Next(); ok; e, ok = g.Next() {
		if every(rng) {
			switch rec % 3 {
			case 0:
				row("user-bad-pq", "device-bad-pq", "", 1704067200000, fmt.Sprintf("bad-pq-%d", rec), nil)
			case 1:
				row("u", "d", "x", 1704067200000, fmt.Sprintf("bad-pq-%d", rec), nil)
			default:
				row("", silencedDevice, "x", 1704067200000, fmt.Sprintf("silenced-pq-%d", rec), nil)
			}
			in.addInvalid(name, rec, "parquet")
			rec++
		}
		row(e.UserID, e.DeviceID, e.EventType, e.Time, e.InsertID, e.Props)
		in.addValid(name, rec, e.InsertID)
		rec++
		if rec%1000 == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := fw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// genBadFirst writes an input whose first file holds only invalid records
// (enough to fill the dead-letter writer's buffer before the first
// checkpoint) and whose second holds good valid events.
func genBadFirst(dir string, bad, good int) (*inputSet, error) {
	in := &inputSet{dir: dir, valid: map[string]bool{}, invalid: map[recKey]string{}, ids: map[string][]string{}}
	var b strings.Builder
	for i := range bad {
		fmt.Fprintf(&b, `{"event_type": "broken", "device_id": "device-%06d", "time": 17040`+"\n", i)
		in.addInvalid("01-bad.jsonl", int64(i), "decode")
	}
	if err := os.WriteFile(filepath.Join(dir, "01-bad.jsonl"), []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	b.Reset()
	g := fixturegen.NewGenerator(fixturegen.Options{N: good, Seed: 7})
	var rec int64
	for e, ok := g.Next(); ok; e, ok = g.Next() {
		b.Write(e.JSON())
		b.WriteByte('\n')
		in.addValid("02-good.jsonl", rec, e.InsertID)
		rec++
	}
	return in, os.WriteFile(filepath.Join(dir, "02-good.jsonl"), []byte(b.String()), 0o644)
}
