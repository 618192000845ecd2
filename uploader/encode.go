package uploader

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/amplitude"
	"github.com/klauspost/compress/gzip"
)

// MaxEvents is the most events one request may carry, on both routes
// (amplitude.MaxEvents; package amplitude owns the limits).
const MaxEvents = amplitude.MaxEvents

// encoder holds the constant parts of a request body:
//
//	{"api_key":"K","events":[ <raw>,<raw>... ],"options":{"min_id_length":N}}
type encoder struct {
	prefix []byte // {"api_key":"K","events":[
	suffix []byte // ]} or ],"options":{"min_id_length":N}}
}

func newEncoder(apiKey string, minIDLength int) encoder {
	key, _ := json.Marshal(apiKey) // a string always marshals
	prefix := make([]byte, 0, len(key)+24)
	prefix = append(prefix, `{"api_key":`...)
	prefix = append(prefix, key...)
	prefix = append(prefix, `,"events":[`...)
	suffix := []byte(`]}`)
	if minIDLength > 0 {
		suffix = append([]byte(`],"options":{"min_id_length":`), strconv.Itoa(minIDLength)...)
		suffix = append(suffix, `}}`...)
	}
	return encoder{prefix: prefix, suffix: suffix}
}

// size is the exact length of the body for events[idx...].
func (e *encoder) size(events []backfill.Event, idx []int) int {
	n := len(e.prefix) + len(e.suffix)
	for _, i := range idx {
		n += len(events[i].Raw)
	}
	if len(idx) > 1 {
		n += len(idx) - 1
	}
	return n
}

// gzipLevel favours CPU over ratio: JSON compresses ~5-10x even at level 1,
// and the machine running backfills is usually short of cores, not bandwidth.
const gzipLevel = gzip.BestSpeed

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzipLevel) // the level is valid
	return w
}}

// appendGzipParts appends the body of parts gzip-compressed to dst.
func appendGzipParts(dst []byte, parts *bodyParts) []byte {
	buf := bytes.NewBuffer(dst)
	w := gzipWriters.Get().(*gzip.Writer)
	w.Reset(buf)
	for k := range parts.count() {
		_, _ = w.Write(parts.piece(k)) // writes to a bytes.Buffer cannot fail
	}
	_ = w.Close()
	w.Reset(nil)
	gzipWriters.Put(w)
	return buf.Bytes()
}
