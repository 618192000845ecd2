package backfill

import (
	"sync"
	"unsafe"
)

// Record buffers are recycled: every event of a backfill is copied once out
// of the reader's buffer into a buffer of its own that travels with it to
// the request body, and allocating that buffer afresh for every event was
// the largest share of the pipeline's allocations, so of its garbage
// collection. Buffers come in classes of recordClass bytes up to
// maxPooledRecord; larger records are allocated and left to the GC.
const (
	recordClass     = 64
	maxPooledRecord = 4096
)

// recordPools[i] holds buffers of capacity (i+1)*recordClass, stored as a
// pointer to their first byte: a pointer in an interface costs no
// allocation, a slice would.
var recordPools [maxPooledRecord / recordClass]sync.Pool

// CloneRecordData returns a copy of b with at least RecordHeadroom spare
// capacity, in a buffer that may have been recycled by
// ReleaseRecordData.
func CloneRecordData(b []byte) []byte {
	need := len(b) + RecordHeadroom
	if need > maxPooledRecord {
		return append(make([]byte, 0, need), b...)
	}
	class := (need + recordClass - 1) / recordClass
	size := class * recordClass
	if p, ok := recordPools[class-1].Get().(*byte); ok {
		return append(unsafe.Slice(p, size)[:0], b...)
	}
	return append(make([]byte, 0, size), b...)
}

// ReleaseRecordData gives buf back for reuse by CloneRecordData. Call it
// only when nothing refers to buf or to any part of its capacity any more: the next
// CloneRecordData may overwrite it. Buffers of other capacities are left
// to the GC, so releasing any []byte is safe as long as it is unreferenced.
func ReleaseRecordData(buf []byte) {
	c := cap(buf)
	if c == 0 || c > maxPooledRecord || c%recordClass != 0 {
		return
	}
	recordPools[c/recordClass-1].Put(unsafe.SliceData(buf))
}
