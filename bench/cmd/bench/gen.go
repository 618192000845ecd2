package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/klauspost/compress/gzip"
)

// The datasets: Amplitude-shaped events of about 400 bytes as JSON, with
// nested event_properties (a list and a sub-object) and user_properties.
// Device attributes (platform, OS, place, user) are a function of
// the device, as in real exports.

// dataset describes one generated event stream.
type dataset struct {
	N       int     // events
	Devices int     // distinct devices
	Seed    uint64  // same seed, same events
	ZipfS   float64 // >0: device i gets about Top/i^ZipfS events (N is then derived)
	Top     int     // events of the hottest device when ZipfS > 0
}

// csvTypes is the --csv-types value for the generated CSV files.
const csvTypes = "time:int,session_id:int,event_properties.amount:float,event_properties.items:json,user_properties.seats:int"

// csvHeader is the header of the generated CSV files.
var csvHeader = []string{"user_id", "device_id", "event_type", "time", "insert_id", "session_id",
	"platform", "os_name", "country", "city",
	"event_properties.path", "event_properties.referrer", "event_properties.amount", "event_properties.items",
	"event_properties.experiment.id", "event_properties.experiment.variant",
	"user_properties.plan", "user_properties.seats", "user_properties.signup"}

type event struct {
	UserID, DeviceID, EventType, InsertID string
	Time, SessionID                       int64
	Platform, OSName, Country, City       string
	Path, Referrer                        string
	Amount                                float64 // NaN = absent
	Items                                 []string
	ExpID, ExpVariant                     string // "" = no experiment
	Plan                                  string
	Seats                                 int64
	Signup                                string
}

var (
	eventTypes = []string{"Page Viewed", "Product Viewed", "Product Added", "Checkout Started",
		"Checkout Completed", "Search Performed", "Signed In", "Video Played", "Notification Opened", "Item Shared"}
	platforms = []struct{ platform, os string }{{"iOS", "ios"}, {"Android", "android"}, {"Web", "Chrome"}, {"Web", "Safari"}}
	places    = []struct{ country, city string }{{"United States", "San Francisco"}, {"Germany", "Berlin"},
		{"France", "Paris"}, {"Japan", "Tokyo"}, {"Brazil", "São Paulo"}, {"India", "Bengaluru"}}
	referrers = []string{"https://www.google.com/", "https://bing.com/", "", "https://t.co/x1y2z3", "https://duck.com/"}
	plans     = []string{"free", "pro", "team", "enterprise"}
)

// generator yields a dataset's events in order.
type generator struct {
	d      dataset
	i      int
	rng    *rand.Rand
	order  []int32 // Zipf: device of each event
	uuids  []string
	t      int64
	totalN int
}

func newGenerator(d dataset) *generator {
	g := &generator{d: d, rng: rand.New(rand.NewPCG(d.Seed, 0x5eed)), t: 1704067200000}
	g.uuids = make([]string, d.Devices)
	for i := range g.uuids {
		g.uuids[i] = deviceUUID(d.Seed, i)
	}
	g.totalN = d.N
	if d.ZipfS > 0 {
		for k := 0; k < d.Devices; k++ {
			c := max(1, int(math.Round(float64(d.Top)/math.Pow(float64(k+1), d.ZipfS))))
			for range c {
				g.order = append(g.order, int32(k))
			}
		}
		g.rng.Shuffle(len(g.order), func(i, j int) { g.order[i], g.order[j] = g.order[j], g.order[i] })
		g.totalN = len(g.order)
	}
	return g
}

func deviceUUID(seed uint64, i int) string {
	r := rand.New(rand.NewPCG(seed^0xd1ce, uint64(i)))
	a, b := r.Uint64(), r.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", uint32(a>>32), uint16(a>>16), uint16(a)&0xfff, uint16(b>>48)&0x3fff|0x8000, b&0xffffffffffff)
}

func (g *generator) next() (event, bool) {
	if g.i >= g.totalN {
		return event{}, false
	}
	i, r := g.i, g.rng
	g.i++
	var dev int
	if g.order != nil {
		dev = int(g.order[i])
	} else {
		dev = r.IntN(g.d.Devices)
	}
	g.t += int64(r.IntN(40))
	p := platforms[dev%len(platforms)]
	pl := places[(dev/7)%len(places)]
	e := event{
		DeviceID:  g.uuids[dev],
		EventType: eventTypes[r.IntN(len(eventTypes))],
		Time:      g.t,
		InsertID:  fmt.Sprintf("bench-%d-%010d", g.d.Seed, i),
		SessionID: g.t - g.t%1800000,
		Platform:  p.platform,
		OSName:    p.os,
		Country:   pl.country,
		City:      pl.city,
		Path:      "/products/" + strconv.Itoa(r.IntN(100000)),
		Referrer:  referrers[r.IntN(len(referrers))],
		Amount:    math.NaN(),
		Plan:      plans[dev%len(plans)],
		Seats:     int64(1 + dev%20),
		Signup:    fmt.Sprintf("2023-%02d-%02d", 1+dev%12, 1+dev%28),
	}
	if dev%10 != 0 {
		e.UserID = fmt.Sprintf("user-%08d", dev)
	}
	if i%3 != 0 {
		e.Amount = float64(r.IntN(50000)) / 100
	}
	for range r.IntN(3) {
		e.Items = append(e.Items, "sku-"+strconv.Itoa(r.IntN(10000)))
	}
	if i%4 == 0 {
		e.ExpID, e.ExpVariant = "exp-"+strconv.Itoa(r.IntN(20)), []string{"control", "a", "b"}[r.IntN(3)]
	}
	return e, true
}

func (e *event) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if e.UserID != "" {
		b = append(b, `"user_id":`...)
		b = strconv.AppendQuote(b, e.UserID)
		b = append(b, ',')
	}
	b = appendKV(b, "device_id", e.DeviceID)
	b = appendKV(b, "event_type", e.EventType)
	b = append(b, `"time":`...)
	b = strconv.AppendInt(b, e.Time, 10)
	b = append(b, ',')
	b = appendKV(b, "insert_id", e.InsertID)
	b = append(b, `"session_id":`...)
	b = strconv.AppendInt(b, e.SessionID, 10)
	b = append(b, ',')
	b = appendKV(b, "platform", e.Platform)
	b = appendKV(b, "os_name", e.OSName)
	b = appendKV(b, "country", e.Country)
	b = appendKV(b, "city", e.City)
	b = append(b, `"event_properties":{`...)
	b = appendKV(b, "path", e.Path)
	if e.Referrer != "" {
		b = appendKV(b, "referrer", e.Referrer)
	}
	if !math.IsNaN(e.Amount) {
		b = append(b, `"amount":`...)
		b = strconv.AppendFloat(b, e.Amount, 'f', -1, 64)
		b = append(b, ',')
	}
	b = append(b, `"items":`...)
	b = appendList(b, e.Items)
	if e.ExpID != "" {
		b = append(b, `,"experiment":{"id":`...)
		b = strconv.AppendQuote(b, e.ExpID)
		b = append(b, `,"variant":`...)
		b = strconv.AppendQuote(b, e.ExpVariant)
		b = append(b, '}')
	}
	b = append(b, `},"user_properties":{`...)
	b = appendKV(b, "plan", e.Plan)
	b = append(b, `"seats":`...)
	b = strconv.AppendInt(b, e.Seats, 10)
	b = append(b, `,"signup":`...)
	b = strconv.AppendQuote(b, e.Signup)
	return append(b, "}}"...)
}

// appendKV appends "k":"v", (the strings are plain ASCII or valid UTF-8
// without quotes or control characters, so Go quoting is JSON quoting).
func appendKV(b []byte, k, v string) []byte {
	b = append(b, '"')
	b = append(b, k...)
	b = append(b, `":`...)
	b = appendJSONString(b, v)
	return append(b, ',')
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendList(b []byte, l []string) []byte {
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// formats are the dataset files of a throughput run, by suffix.
var formats = []string{"jsonl", "jsonl.gz", "csv", "parquet"}

// writeDataset writes d to path in the format of its suffix, through a
// temporary file so an interrupted generation never leaves a truncated
// cache entry behind.
func writeDataset(path string, d dataset) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	format := ""
	for _, s := range formats {
		if strings.HasSuffix(path, "."+s) && len(s) > len(format) {
			format = s
		}
	}
	err = writeFormat(struct{ io.Writer }{f}, format, d)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

func writeFormat(w io.Writer, format string, d dataset) error {
	switch format {
	case "jsonl":
		bw := bufio.NewWriterSize(w, 1<<20)
		g := newGenerator(d)
		var b []byte
		for e, ok := g.next(); ok; e, ok = g.next() {
			b = append(e.appendJSON(b[:0]), '\n')
			bw.Write(b)
		}
		return bw.Flush()
	case "jsonl.gz":
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		if err != nil {
			return err
		}
		if err := writeFormat(zw, "jsonl", d); err != nil {
			return err
		}
		return zw.Close()
	case "csv":
		return writeCSV(w, d)
	case "parquet":
		return writeParquet(w, d)
	}
	return fmt.Errorf("unknown format %q", format)
}

func writeCSV(w io.Writer, d dataset) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := csv.NewWriter(bw)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	row := make([]string, len(csvHeader))
	g := newGenerator(d)
	for e, ok := g.next(); ok; e, ok = g.next() {
		amount := ""
		if !math.IsNaN(e.Amount) {
			amount = strconv.FormatFloat(e.Amount, 'f', -1, 64)
		}
		row = append(row[:0], e.UserID, e.DeviceID, e.EventType, strconv.FormatInt(e.Time, 10), e.InsertID,
			strconv.FormatInt(e.SessionID, 10), e.Platform, e.OSName, e.Country, e.City, e.Path, e.Referrer, amount, string(appendList(nil, e.Items)),
			e.ExpID, e.ExpVariant, e.Plan, strconv.FormatInt(e.Seats, 10), e.Signup)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// parquetRowGroup is the row group length of the generated Parquet files
// (about 20 MB compressed, close to what Spark writes with default
// settings for rows of this size).
const parquetRowGroup = 128 * 1024

var parquetSchema = func() *arrow.Schema {
	str := func(name string, null bool) arrow.Field {
		return arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: null}
	}
	i64 := func(name string) arrow.Field { return arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Int64} }
	return arrow.NewSchema([]arrow.Field{
		str("user_id", true), str("device_id", false), str("event_type", false), i64("time"), str("insert_id", false),
		i64("session_id"), str("platform", false), str("os_name", false), str("country", false), str("city", false),
		{Name: "event_properties", Type: arrow.StructOf(
			str("path", false), str("referrer", true),
			arrow.Field{Name: "amount", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
			arrow.Field{Name: "items", Type: arrow.ListOf(arrow.BinaryTypes.String)},
			arrow.Field{Name: "experiment", Nullable: true, Type: arrow.StructOf(str("id", false), str("variant", false))},
		)},
		{Name: "user_properties", Type: arrow.StructOf(str("plan", false), i64("seats"), str("signup", false))},
	}, nil)
}()

func writeParquet(w io.Writer, d dataset) error {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(parquetRowGroup),
		parquet.WithDictionaryDefault(true),
		parquet.WithCreatedBy("backfill bench"),
	)
	fw, err := pqarrow.NewFileWriter(parquetSchema, w, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return err
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, parquetSchema)
	defer b.Release()
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		n = 0
		return fw.WriteBuffered(rec)
	}
	g := newGenerator(d)
	rows := 0
	for e, ok := g.next(); ok; e, ok = g.next() {
		appendParquet(b, &e)
		n++
		rows++
		if rows%parquetRowGroup == 0 {
			if err := flush(); err != nil {
				return err
			}
			fw.NewBufferedRowGroup()
		} else if n == 8192 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return fw.Close()
}

func appendParquet(b *array.RecordBuilder, e *event) {
	str := func(sb array.Builder, s string) {
		if s == "" {
			sb.AppendNull()
		} else {
			sb.(*array.StringBuilder).Append(s)
		}
	}
	f := b.Field
	str(f(0), e.UserID)
	str(f(1), e.DeviceID)
	str(f(2), e.EventType)
	f(3).(*array.Int64Builder).Append(e.Time)
	str(f(4), e.InsertID)
	f(5).(*array.Int64Builder).Append(e.SessionID)
	for i, s := range []string{e.Platform, e.OSName, e.Country, e.City} {
		str(f(6+i), s)
	}
	ep := f(10).(*array.StructBuilder)
	ep.Append(true)
	str(ep.FieldBuilder(0), e.Path)
	str(ep.FieldBuilder(1), e.Referrer)
	if math.IsNaN(e.Amount) {
		ep.FieldBuilder(2).AppendNull()
	} else {
		ep.FieldBuilder(2).(*array.Float64Builder).Append(e.Amount)
	}
	lb := ep.FieldBuilder(3).(*array.ListBuilder)
	lb.Append(true)
	for _, it := range e.Items {
		lb.ValueBuilder().(*array.StringBuilder).Append(it)
	}
	xb := ep.FieldBuilder(4).(*array.StructBuilder)
	if e.ExpID == "" {
		xb.AppendNull()
	} else {
		xb.Append(true)
		str(xb.FieldBuilder(0), e.ExpID)
		str(xb.FieldBuilder(1), e.ExpVariant)
	}
	up := f(11).(*array.StructBuilder)
	up.Append(true)
	str(up.FieldBuilder(0), e.Plan)
	up.FieldBuilder(1).(*array.Int64Builder).Append(e.Seats)
	str(up.FieldBuilder(2), e.Signup)
}
