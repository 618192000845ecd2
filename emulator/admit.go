package emulator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/maphash"
	"net/http"
	"slices"
	"time"

	"github.com/backfillhq/backfill"
)

// agg is one id's share of a request.
type agg struct {
	kind byte   // 'd' device, 'u' user
	id   []byte // points into the request's memory
	n    int64
	st   *idState
	eps  int64 // > 0 when throttled
	day  int64 // > 0 when over the daily quota
	// overWindow: the request alone holds more of this id's events than
	// one throttle window allows, so it can never be accepted.
	overWindow bool
}

// idKey appends the key of s.ids for (api key, kind, id) to dst.
func idKey(dst []byte, kind byte, apiKey, id []byte) []byte {
	dst = append(dst, kind)
	dst = append(dst, apiKey...)
	dst = append(dst, 0)
	return append(dst, id...)
}

// handle runs the pipeline after faults that need no body. It returns the
// answer and how many events the request carried (0 if unknown).
func (s *Server) handle(r *http.Request, route backfill.Route, f forced, m *scratch) (reply, int) {
	limit, threshold := s.l.maxBatch, s.l.batchEPS
	if route == backfill.RouteHTTP {
		limit, threshold = s.l.maxHTTP, s.l.httpEPS
	}
	if rep, ok := s.readBody(r, limit, &m.buf); !ok {
		return rep, 0
	}
	if s.l.strict && !contentTypeOK(r.Header.Get("Content-Type")) {
		return errorReply(http.StatusBadRequest, errContentType), 0
	}
	body := m.buf.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		return errorReply(http.StatusBadRequest, errMissingBody), 0
	}
	apiKey, events, rep, n, ok := parseBody(&m.sc, body, limit, s.l.apiKeys)
	if !ok {
		return rep, n
	}
	if len(s.l.silenced) > 0 {
		if rep, ok := s.silenced(events, threshold); !ok {
			return rep, len(events)
		}
	}
	s.dedupeKeys(m, apiKey, events)
	aggs := m.aggregate(events)
	return s.admit(route, f, threshold, len(body), apiKey, events, aggs, m), len(events)
}

// dedupeKeys hashes the dedupe key of every event with an insert_id, before
// the lock is taken.
func (s *Server) dedupeKeys(m *scratch, apiKey []byte, events []event) {
	for i := range events {
		ev := &events[i]
		if ev.insertID == nil {
			continue
		}
		b := binary.AppendUvarint(m.key[:0], uint64(len(apiKey)))
		b = append(b, apiKey...)
		b = binary.AppendUvarint(b, uint64(len(ev.device)))
		b = append(b, ev.device...)
		b = append(b, ev.insertID...)
		ev.dkey = dedupeKey{maphash.Bytes(s.ddSeeds[0], b), maphash.Bytes(s.ddSeeds[1], b)}
		m.key = b
	}
}

func (s *Server) silenced(events []event, threshold int) (reply, bool) {
	var devs []string
	var idx []int
	seen := map[string]bool{}
	for i := range events {
		d := events[i].device
		if d == nil {
			continue
		}
		if _, ok := s.l.silenced[string(d)]; !ok {
			continue
		}
		idx = append(idx, i)
		if !seen[string(d)] {
			seen[string(d)] = true
			devs = append(devs, string(d))
		}
	}
	if idx == nil {
		return reply{}, true
	}
	return jsonReply(http.StatusBadRequest, &silencedBody{
		Code:                      http.StatusBadRequest,
		Error:                     errSilenced,
		EPSThreshold:              threshold,
		ExceededDailyQuotaDevices: map[string]int64{},
		SilencedDevices:           devs,
		SilencedEvents:            idx,
		ThrottledDevices:          map[string]int64{},
		ThrottledEvents:           []int{},
	}, errSilenced), false
}

// aggSeed seeds the per-request id index.
var aggSeed = maphash.MakeSeed()

// aggregate groups the request's events by id (device ids and user ids; the
// API key is the same for all), in order of first appearance. It indexes
// them in a small open-addressing table rather than a map so that a
// request allocates nothing per id.
func (m *scratch) aggregate(events []event) []agg {
	size := 64
	for size < 4*len(events) { // at most 2 ids per event: load ≤ 1/2
		size *= 2
	}
	m.table = slices.Grow(m.table[:0], size)[:size]
	clear(m.table)
	clear(m.aggs) // drop references to the previous request
	m.aggs = m.aggs[:0]
	mask := uint64(size - 1)
	for i := range events {
		ev := &events[i]
		for k, id := range [2][]byte{ev.device, ev.user} {
			if id == nil {
				continue
			}
			kind := byte('d')
			if k == 1 {
				kind = 'u'
			}
			j := maphash.Bytes(aggSeed, id) & mask
			for m.table[j] != 0 {
				if a := &m.aggs[m.table[j]-1]; a.kind == kind && bytes.Equal(a.id, id) {
					break
				}
				j = (j + 1) & mask
			}
			if m.table[j] == 0 {
				m.aggs = append(m.aggs, agg{kind: kind, id: id})
				m.table[j] = int32(len(m.aggs))
			}
			m.aggs[m.table[j]-1].n++
			ev.aggs[k] = m.table[j]
		}
	}
	return m.aggs
}

// admit runs throttling, the quota and the ingest under the lock.
func (s *Server) admit(route backfill.Route, f forced, threshold, size int, apiKey []byte, events []event, aggs []agg, m *scratch) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.l.now()
	nowMs := now.UnixMilli()
	winSlot, daySlot := slots(now)
	s.sweepLocked(winSlot, daySlot)
	if rep, ok := s.projectLocked(apiKey, len(events), now); !ok {
		return rep
	}

	limit := int64(threshold) * int64(ThrottleWindow/time.Second)
	quota := int64(s.l.dailyQuota)
	throttled := false
	for i := range aggs {
		a := &aggs[i]
		m.key = idKey(m.key[:0], a.kind, apiKey, a.id)
		a.st = s.ids[string(m.key)]
		var cur, day int64
		if a.st != nil {
			cur = a.st.win.count(winSlot, winBuckets)
			day = a.st.day.count(daySlot, dayBuckets)
		}
		forcedThrottle := f.status == http.StatusTooManyRequests && !f.after
		if (limit > 0 && cur+a.n > limit) || forcedThrottle {
			a.eps = max(epsOf(cur+a.n), 1)
			throttled = true
		}
		// More of one id's events than a whole window holds: no wait
		// makes this request acceptable (the 429 body says so).
		a.overWindow = limit > 0 && a.n > limit
		// The quota refuses ids that have reached it, as the docs
		// describe; the request that reaches it is still accepted.
		if quota > 0 && day >= quota {
			a.day = day
			throttled = true
		}
	}
	if f.status == http.StatusRequestEntityTooLarge && !f.after {
		return faultReply(f.status, threshold)
	}
	if throttled || (f.status == http.StatusTooManyRequests && !f.after) {
		return throttleReply(threshold, limit, events, aggs)
	}

	// Ingest.
	for i := range aggs {
		a := &aggs[i]
		st := a.st
		if st == nil {
			key := string(idKey(m.key[:0], a.kind, apiKey, a.id))
			st = &idState{kind: a.kind, id: key[len(key)-len(a.id):]}
			s.ids[key] = st
		}
		st.win.add(winSlot, a.n)
		st.day.add(daySlot, a.n)
		st.peak = max(st.peak, st.win.sum)
	}
	s.dd.expire(nowMs - DedupeWindow.Milliseconds())
	keep := slices.Grow(m.keep[:0], len(events))[:len(events)]
	clear(keep)
	m.keep = keep
	kept, slab := 0, 0
	for i := range events {
		ev := &events[i]
		if ev.insertID != nil {
			if !s.dd.insert(ev.dkey, nowMs) {
				s.stats.EventsDuplicate++
				continue
			}
		}
		keep[i] = true
		kept++
		slab += len(ev.raw) + len(ev.device) + len(ev.user) + len(ev.insertID)
	}
	s.stats.EventsAccepted += int64(kept)
	if kept > 0 && (!s.l.discard || s.l.record != nil) {
		s.logLocked(route, events, keep, slab)
	}
	if f.after && f.status != 0 {
		s.stats.IngestedThenFailed++
		return faultReply(f.status, threshold)
	}
	return okReply(len(events), size, nowMs)
}

// logLocked appends kept events to the in-memory log and the Record writer.
func (s *Server) logLocked(route backfill.Route, events []event, keep []bool, slab int) {
	var raws []byte
	var idStr string
	if !s.l.discard {
		raws = make([]byte, 0, slab)
		// Ids of the whole request live in one string to save allocations.
		ids := make([]byte, 0, slab)
		for i := range events {
			if keep[i] {
				ids = append(ids, events[i].device...)
				ids = append(ids, events[i].user...)
				ids = append(ids, events[i].insertID...)
			}
		}
		idStr = string(ids)
	}
	var line []byte
	off := 0
	take := func(n int) string { s := idStr[off : off+n]; off += n; return s }
	for i := range events {
		if !keep[i] {
			continue
		}
		ev := &events[i]
		raw := ev.raw
		if bytes.IndexByte(raw, '\n') >= 0 || bytes.IndexByte(raw, '\r') >= 0 {
			var c bytes.Buffer
			if json.Compact(&c, raw) == nil {
				raw = c.Bytes()
			}
		}
		var cut int
		raw, cut = truncateStrings(raw)
		s.stats.StringsTruncated += int64(cut)
		if !s.l.discard {
			start := len(raws)
			raws = append(raws, raw...)
			s.events.push(Recorded{
				Route:    route,
				Event:    raws[start:len(raws):len(raws)],
				DeviceID: take(len(ev.device)),
				UserID:   take(len(ev.user)),
				InsertID: take(len(ev.insertID)),
			})
		}
		if s.l.record != nil {
			line = appendRecordLine(line, route, raw)
			line = append(line, '\n')
		}
	}
	if len(line) > 0 {
		if _, err := s.l.record.Write(line); err != nil && !s.recErr {
			s.recErr = true
			s.l.logger.Warn("record write failed; further errors are not logged", "error", err)
		}
	}
}

// throttleReply is the 429. limit is the most events one id may have in a
// throttle window (threshold × 30 s); ids of which the request alone holds
// more are also listed in the emulator's request_exceeds_window_* fields.
func throttleReply(threshold int, limit int64, events []event, aggs []agg) reply {
	b := newThrottle(threshold)
	for _, a := range aggs {
		if a.eps > 0 {
			if a.kind == 'd' {
				b.ThrottledDevices[string(a.id)] = a.eps
			} else {
				b.ThrottledUsers[string(a.id)] = a.eps
			}
		}
		if a.overWindow {
			b.addOverWindow(a.kind, string(a.id), a.n, limit)
		}
		if a.day > 0 {
			if a.kind == 'd' {
				b.ExceededDailyQuotaDevices[string(a.id)] = a.day
			} else {
				b.ExceededDailyQuotaUsers[string(a.id)] = a.day
			}
		}
	}
	for i := range events {
		for _, k := range events[i].aggs {
			if k != 0 && (aggs[k-1].eps > 0 || aggs[k-1].day > 0) {
				b.ThrottledEvents = append(b.ThrottledEvents, i)
				break
			}
		}
	}
	return jsonReply(http.StatusTooManyRequests, b, errThrottled)
}

// sweepLocked forgets ids with nothing left in either window, once per
// minute of the (injected) clock, so memory follows recent activity only.
func (s *Server) sweepLocked(winSlot, daySlot int64) {
	const every = int64(time.Minute / winBucket)
	if winSlot-s.lastSweep < every && winSlot >= s.lastSweep {
		return
	}
	s.lastSweep = winSlot
	for k, st := range s.ids {
		if st.win.count(winSlot, winBuckets) == 0 && st.day.count(daySlot, dayBuckets) == 0 {
			s.peakGone = max(s.peakGone, st.peak)
			delete(s.ids, k)
		}
	}
}
