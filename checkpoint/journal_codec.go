package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The journal is a sequence of frames, one per group commit:
//
//	frame   = length uint32 LE | crc32c(payload) uint32 LE | payload
//	payload = unix-ms uvarint | entry...
//
// A local generation is one file of frames appended one after another; a
// bucket generation is one object per frame. A frame cut short or damaged
// by a crash ends the generation there: its entries were never reported
// durable, so nothing acknowledged is lost with it.
//
// Entries (integers are varints, strings a uvarint length and the bytes):
//
//	'B'                          a run begins: what earlier runs had in flight crashed
//	'O' idx url fingerprint      declares object idx of this generation
//	'S' lane n (obj Δrec)×n      lane sends these records
//	'R' lane n (obj Δrec)×n      restates lane's request in flight (new generation)
//	'C' n (obj Δrec)×n           restates records in flight at an earlier crash, not sent again yet
//	'A' lane all                 the lane's request settled; all=1: every record accepted
//	'A' lane 0 n Δidx×n          ... only these indexes of it accepted
//	'P' n (route kind id m (Δsec n)×m)×n  recent sends of the budgets' exactly tracked ids
//
// Records are (object index, record index) pairs, the record as a signed
// delta from the previous pair's record.
const (
	entBegin    = 'B'
	entObject   = 'O'
	entSent     = 'S'
	entRestated = 'R'
	entCrashed  = 'C'
	entAcked    = 'A'
	entRecent   = 'P'
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// frameHeader is the length and checksum before each frame's payload.
const frameHeader = 8

// maxFrame bounds a frame's payload when reading, so a damaged length
// cannot make the reader allocate gigabytes.
const maxFrame = 1 << 30

// errTorn marks the end of the readable frames of a generation.
var errTorn = errors.New("journal frame cut short or damaged")

// sealFrame writes the header of the frame whose payload is buf[frameHeader:].
func sealFrame(buf []byte) []byte {
	p := buf[frameHeader:]
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(p, crcTable))
	return buf
}

// nextFrame splits the first frame off data: its payload and the rest.
func nextFrame(data []byte) (payload, rest []byte, err error) {
	if len(data) < frameHeader {
		return nil, nil, errTorn
	}
	n := binary.LittleEndian.Uint32(data[0:4])
	if n > maxFrame || int(n) > len(data)-frameHeader {
		return nil, nil, errTorn
	}
	p := data[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(data[4:8]) {
		return nil, nil, errTorn
	}
	return p, data[frameHeader+int(n):], nil
}

// enc appends entries to a frame's payload.
type enc struct{ b []byte }

func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

// dec reads a frame's payload; the first malformed read sets err and every
// later read returns zero values.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: malformed journal entry", ErrCorrupt)
	}
	d.b = nil
}

func (d *dec) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left (each item takes at
// least one byte), so a damaged count cannot make the reader allocate much.
func (d *dec) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *dec) str() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
