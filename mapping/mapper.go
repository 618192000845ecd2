package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/deadletter"
	"github.com/backfillhq/backfill/validate"
	"github.com/valyala/fastjson"
)

// DefaultMinIDLength is the minimum user_id/device_id length (Amplitude's
// default). A different value must also be sent as options.min_id_length.
const DefaultMinIDLength = validate.DefaultMinIDLength

// Sentinel errors of Map; every Map error also unwraps to a
// *backfill.RecordError.
var (
	// ErrFiltered marks a record dropped by a filter of the spec.
	ErrFiltered = errors.New("filtered")
	// ErrRejected marks a record that cannot be mapped or fails validation.
	ErrRejected = errors.New("rejected")
	// ErrSkipped marks a record the source itself excluded from Amplitude
	// (the spec's exclude_when, such as Segment's integrations
	// {"Amplitude": false}): it is settled as skipped, neither sent nor
	// dead-lettered, unless Options.IncludeExcluded is set.
	ErrSkipped = errors.New("skipped")
)

// Reason codes used in Error.Code and Stats.Rejected, beside the
// validate.Code* codes.
const (
	CodeFiltered     = "filtered"
	CodeSkipped      = "skipped"
	CodeInvalidField = validate.CodeInvalidField
	CodeInvalidJSON  = validate.CodeInvalidJSON
	CodeDeadLetter   = "bad_dead_letter"
	// CodeDecode counts, in a Summary, the records a reader could not
	// decode (not JSON objects, invalid UTF-8, too long, malformed rows).
	CodeDecode = "decode"
)

// Error is what Map returns for a record it does not turn into an event.
// errors.As(err, **backfill.RecordError) yields the record error to
// dead-letter; errors.Is(err, ErrFiltered) or ErrRejected tells the two
// outcomes apart; validation failures also match validate.ErrInvalid.
type Error struct {
	Record *backfill.RecordError
	Code   string // CodeFiltered, a validate.Code*, or another Code* constant
	// InsertID is the insert_id the event would have had without its own:
	// the dead-letter entry's id for a re-fed entry, else
	// DeriveInsertID(Pos). Write it into the dead-letter entry so a fixed
	// record re-fed later keeps it.
	InsertID string
	err      error
}

func (e *Error) Error() string { return e.Record.Error() }

// Skipped reports that the record was excluded at the source (ErrSkipped):
// the pipeline settles it as skipped instead of dead-lettering it
// (pipeline.SkippedError).
func (e *Error) Skipped() bool { return e.Code == CodeSkipped }

// Rejection names the dead-letter stage of the record and the insert_id its
// entry keeps (pipeline.StagedError): filter for ErrFiltered, decode for a
// syntax error the reader left to the mapper (reader.Options.DeferJSONCheck),
// validate otherwise.
func (e *Error) Rejection() (deadletter.Stage, string) {
	switch {
	case errors.Is(e.err, ErrFiltered):
		return deadletter.StageFilter, e.InsertID
	case e.Code == CodeInvalidJSON:
		return deadletter.StageDecode, e.InsertID
	}
	return deadletter.StageValidate, e.InsertID
}

// Unwrap exposes the record error and the sentinel(s).
func (e *Error) Unwrap() []error { return []error{e.Record, e.err} }

// Options configures a Mapper. The zero value maps the amplitude preset.
type Options struct {
	// Preset names a shipped preset; default DefaultPreset. Ignored when
	// Spec is set.
	Preset string
	// Spec is a custom mapping (from LoadSpec/ParseSpec); Extends is
	// resolved by New.
	Spec *Spec
	// SkipUserPropertiesSync adds "$skip_user_properties_sync":true to
	// every event that lacks the key. The pipeline turns it on by default.
	SkipUserPropertiesSync bool
	// MinIDLength is the shortest accepted id; default DefaultMinIDLength.
	MinIDLength int
	// AllowMissingTime accepts events without a time (see validate).
	AllowMissingTime bool
	// Now is the clock for the future-time bound; default time.Now.
	Now func() time.Time
	// IncludeExcluded sends records the source excluded from Amplitude
	// (the spec's exclude_when) instead of skipping them.
	IncludeExcluded bool
	// OwnRecords lets Map reuse a record's Data buffer for the event when it
	// has room (see backfill.RecordHeadroom) instead of copying it. Set it
	// only when the caller never reads a record's Data again after a
	// successful Map (the pipeline).
	OwnRecords bool
}

// Mapper turns source records into validated Amplitude events. It is safe
// for concurrent use.
type Mapper struct {
	opt   Options
	plan  *plan
	val   *validate.Validator
	pool  sync.Pool
	stats counters
}

// New compiles the mapping selected by opt.
func New(opt Options) (*Mapper, error) {
	spec := opt.Spec
	fast := false
	if spec == nil {
		var err error
		if spec, err = Preset(opt.Preset); err != nil {
			return nil, err
		}
	}
	if spec.Extends == DefaultPreset && spec.onlyFilters() {
		fast = true
	}
	resolved, err := resolve(spec, 0)
	if err != nil {
		return nil, err
	}
	if resolved.Name == DefaultPreset && opt.Spec == nil {
		fast = true
	}
	pl, err := compile(resolved)
	if err != nil {
		return nil, err
	}
	pl.fast = fast
	if opt.MinIDLength == 0 {
		opt.MinIDLength = DefaultMinIDLength
	}
	val, err := validate.New(validate.Options{MinIDLength: opt.MinIDLength, AllowMissingTime: opt.AllowMissingTime, Now: opt.Now})
	if err != nil {
		return nil, err
	}
	m := &Mapper{opt: opt, plan: pl, val: val}
	m.pool.New = func() any { return newState() }
	return m, nil
}

// Name returns the name of the effective mapping.
func (m *Mapper) Name() string { return m.plan.name }

// spliceRoom is the most bytes fastPath appends to an unchanged record.
func spliceRoom(addInsert, addSkip bool, insertID string) int {
	n := 0
	if addInsert {
		n += len(`,"insert_id":""`) + len(insertID)
		for i := 0; i < len(insertID); i++ {
			if c := insertID[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				n += 5 * len(insertID) // escaped: at most \uXXXX per byte
				break
			}
		}
	}
	if addSkip {
		n += len(`,"$skip_user_properties_sync":true`)
	}
	return n
}

// DeriveInsertID returns the insert_id used for a record without one:
// "bf-" + the first 32 hex digits of SHA-256(pos.Object + "#" +
// decimal pos.Record). It depends only on the object URL (without query
// string) and the record index, so a record keeps its id across retries,
// resumes and re-runs of the same source.
func DeriveInsertID(pos backfill.Position) string {
	var stack [256]byte
	in := append(stack[:0], pos.Object...)
	in = append(in, '#')
	in = strconv.AppendInt(in, pos.Record, 10)
	sum := sha256.Sum256(in)
	var out [3 + 32]byte
	copy(out[:], "bf-")
	hex.Encode(out[3:], sum[:16])
	return string(out[:])
}

// Map turns one record into an event. Errors are *Error values (see there);
// the record is then dead-lettered and the run goes on.
func (m *Mapper) Map(rec backfill.Record) (backfill.Event, error) {
	st := m.pool.Get().(*state)
	defer func() {
		st.reset()
		m.pool.Put(st)
	}()
	ev, code, err := m.mapRecord(st, rec)
	if err == nil {
		m.stats.mapped.Add(1)
		return ev, nil
	}
	raw, insertID := rec.Data, st.dlInsertID
	if insertID == "" {
		insertID = DeriveInsertID(rec.Pos)
	}
	if st.inner != nil {
		// A re-fed dead-letter entry fails again: keep its original record,
		// not the entry, so entries never nest.
		if b, err := validate.AppendValue(nil, st.inner); err == nil {
			raw = b
		}
	}
	e := m.fail(rec, raw, code, err)
	e.InsertID = insertID
	return backfill.Event{}, e
}

// fail wraps err into an *Error and counts it.
func (m *Mapper) fail(rec backfill.Record, raw []byte, code string, err error) *Error {
	var ve *validate.Error
	if errors.As(err, &ve) {
		code = ve.Code
	}
	sentinel := ErrRejected
	reason := err.Error()
	switch code {
	case CodeFiltered:
		sentinel = ErrFiltered
		reason = "filtered: " + reason
		m.stats.filtered.Add(1)
	case CodeSkipped:
		sentinel = ErrSkipped
		reason = "skipped: " + reason
		m.stats.skipped.Add(1)
	default:
		m.stats.reject(code)
		if ve != nil {
			sentinel = errors.Join(ErrRejected, ve)
		}
	}
	return &Error{
		Record: &backfill.RecordError{Pos: rec.Pos, Raw: raw, Reason: reason},
		Code:   code,
		err:    sentinel,
	}
}

func (m *Mapper) mapRecord(st *state, rec backfill.Record) (backfill.Event, string, error) {
	pl := m.plan
	if pl.fast && len(pl.skipWhen) == 0 {
		// One scan decides for nearly every record already in Amplitude's
		// shape; the others take the slow path below, which explains.
		if res, ok := m.val.Scan(rec.Data); ok {
			return m.fastPath(rec, nil, rec.Data, res, res.EventType, res.Time, res.HasTime, nil)
		}
	}
	if rec.Unchecked {
		// The reader left the syntax check to us (backfill.Record).
		if err := fastjson.ValidateBytes(rec.Data); err != nil {
			return backfill.Event{}, CodeInvalidJSON, errors.New(backfill.BoundReason("invalid JSON: " + err.Error()))
		}
	}
	root, err := st.p.ParseBytes(rec.Data)
	if err != nil {
		return backfill.Event{}, CodeInvalidJSON, fmt.Errorf("invalid JSON: %v", err)
	}
	if root.Type() != fastjson.TypeObject {
		return backfill.Event{}, CodeInvalidJSON, fmt.Errorf("record is not a JSON object")
	}
	dlInsertID, refed := "", false
	if dl := root.Get("backfill_dead_letter"); dl != nil {
		if s, _ := srcScalar(dl); s == "1" || s == "true" {
			data := root.Get("data")
			if d, ok := st.decodeString(data); ok {
				data = d
			}
			if data == nil || data.Type() != fastjson.TypeObject {
				return backfill.Event{}, CodeDeadLetter, fmt.Errorf("dead-letter entry has no data object")
			}
			if b := root.GetStringBytes("insert_id"); len(b) > 0 {
				dlInsertID = string(b)
				st.dlInsertID = dlInsertID
			}
			root, refed = data, true
			st.inner = data
			m.stats.refed.Add(1)
		}
	}
	if len(pl.skipWhen) > 0 {
		if why := pl.skipReason(root); why != "" {
			return backfill.Event{}, CodeFiltered, errors.New(why)
		}
	}
	if len(pl.excludeWhen) > 0 && !m.opt.IncludeExcluded {
		if why := matchAny(root, pl.excludeWhen); why != "" {
			return backfill.Event{}, CodeSkipped, errors.New("excluded at the source (" + why + ")")
		}
	}
	if pl.fast && !refed {
		// Check first: Result.Typed says whether the record is already a
		// well-typed Amplitude event that can be sent as it is.
		res, err := m.val.CheckTyped(root)
		if res.Typed {
			data := bytes.TrimSpace(rec.Data)
			if rawSafe(data) {
				et, _ := srcScalar(root.Get("event_type"))
				t, hasT := int64(0), false
				if tv := root.Get("time"); tv != nil {
					if n, err := tv.Int64(); err == nil {
						t, hasT = n, true
					}
				}
				return m.fastPath(rec, root, data, res, et, t, hasT, err)
			}
		}
	}
	return m.generic(st, rec, root, dlInsertID)
}

// rawSafe reports whether data, already parsed by fastjson and checked by
// the validator (which verifies number syntax), can be copied to the wire:
// it must be valid UTF-8 and its strings must hold neither raw control
// characters nor invalid escapes, which fastjson's parser tolerates. Records
// without backslashes or control bytes (nearly all) skip the strict
// validation pass.
func rawSafe(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	for _, c := range data {
		if c < 0x20 || c == '\\' {
			return fastjson.ValidateBytes(data) == nil
		}
	}
	return true
}

// fastPath finishes a record that is already an Amplitude event: res and
// checkErr are the validation of data, et, t and hasT its event type and time
// for the filters. root is its parsed tree, needed only when res.Changed()
// (Scan never returns such a Result).
func (m *Mapper) fastPath(rec backfill.Record, root *fastjson.Value, data []byte, res validate.Result, et string, t int64, hasT bool, checkErr error) (backfill.Event, string, error) {
	if m.plan.dropTypes != nil || m.plan.keepTypes != nil || m.plan.hasFrom || m.plan.hasTo {
		if why := m.plan.filterReason(et, t, hasT); why != "" {
			return backfill.Event{}, CodeFiltered, errors.New(why)
		}
	}
	if checkErr != nil {
		return backfill.Event{}, "", checkErr
	}
	var err error
	insertID := res.InsertID
	addInsert := insertID == ""
	if addInsert {
		insertID = DeriveInsertID(rec.Pos)
		m.stats.derived.Add(1)
	}
	addSkip := m.opt.SkipUserPropertiesSync && !res.HasSkipSync
	var raw []byte
	if res.Changed() {
		if raw, err = m.val.AppendEvent(make([]byte, 0, len(data)+96), root, &res); err != nil {
			return backfill.Event{}, "", err
		}
		m.countRepairs(&res)
	} else {
		if m.opt.OwnRecords && len(rec.Data) > 0 && len(data) > 0 && &data[0] == &rec.Data[0] &&
			cap(data)-len(data) >= spliceRoom(addInsert, addSkip, insertID) {
			raw = data // the caller gave us the record: splice in place
		} else {
			raw = make([]byte, 0, len(data)+backfill.RecordHeadroom)
			raw = append(raw, data...)
		}
		m.stats.fast.Add(1)
	}
	raw = raw[:len(raw)-1] // drop the final '}'
	if addInsert {
		raw = append(raw, `,"insert_id":`...)
		raw = validate.AppendString(raw, insertID)
	}
	if addSkip {
		raw = append(raw, `,"$skip_user_properties_sync":true`...)
	}
	raw = append(raw, '}')
	if cap(raw)-len(raw) > len(raw) {
		// Repairs (strings over 1,024 characters truncated) shrank the
		// event: copy it, or it would pin a buffer the size of the input
		// record while the lanes' byte bounds count only len(Raw).
		raw = bytes.Clone(raw)
	}
	return backfill.Event{
		Raw: raw, DeviceID: res.DeviceID, UserID: res.UserID, InsertID: insertID,
		EventType: res.EventType, Time: res.Time, Pos: rec.Pos,
	}, "", nil
}

func (m *Mapper) countRepairs(res *validate.Result) {
	m.stats.repaired.Add(1)
	if n := res.StrippedIDs(); n > 0 {
		m.stats.stripped.Add(int64(n))
		m.stats.blockedIDs.Add(int64(res.BlockedIDs))
	}
	if res.Truncated > 0 {
		m.stats.truncated.Add(int64(res.Truncated))
	}
}

func (m *Mapper) generic(st *state, rec backfill.Record, root *fastjson.Value, dlInsertID string) (backfill.Event, string, error) {
	pl := m.plan
	if err := pl.apply(st, root); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) && fe.field == "time" {
			return backfill.Event{}, validate.CodeInvalidTime, err
		}
		return backfill.Event{}, CodeInvalidField, err
	}
	etSlot, tSlot, iSlot := fieldIndex["event_type"], fieldIndex["time"], fieldIndex["insert_id"]
	if pl.dropTypes != nil || pl.keepTypes != nil || pl.hasFrom || pl.hasTo {
		et, _ := st.top[etSlot].scalar()
		var t int64
		ts, hasT := st.top[tSlot].scalar()
		if hasT {
			t, _ = strconv.ParseInt(ts, 10, 64)
		}
		if why := pl.filterReason(et, t, hasT); why != "" {
			return backfill.Event{}, CodeFiltered, errors.New(why)
		}
	}
	if st.top[iSlot].isEmpty() {
		id := dlInsertID
		if id == "" {
			id = pl.hashInsertID(st, root)
		}
		if id == "" {
			id = DeriveInsertID(rec.Pos)
		}
		m.stats.derived.Add(1)
		st.top[iSlot] = strVal(id)
	}
	if m.opt.SkipUserPropertiesSync && !st.profile {
		// A profile is the user's current state: its $identify must
		// update the user table, so it keeps Amplitude's default (sync).
		if s := fieldIndex["$skip_user_properties_sync"]; st.top[s].kind == kNone {
			st.top[s] = boolVal(true)
		}
	}
	buf := append(st.buf[:0], '{')
	var err error
	for i := range st.top {
		v := st.top[i]
		if v.isEmpty() {
			continue
		}
		if len(buf) > 1 {
			buf = append(buf, ',')
		}
		buf = validate.AppendString(buf, fieldNames[i])
		buf = append(buf, ':')
		if buf, err = appendOut(buf, v); err != nil {
			st.buf = buf
			return backfill.Event{}, CodeInvalidField, fmt.Errorf("invalid %s: %v", fieldNames[i], err)
		}
	}
	buf = append(buf, '}')
	st.buf = buf
	ev, err := st.p2.ParseBytes(buf)
	if err != nil {
		return backfill.Event{}, CodeInvalidJSON, fmt.Errorf("encode event: %v", err)
	}
	res, err := m.val.Check(ev)
	if err != nil {
		return backfill.Event{}, "", err
	}
	var raw []byte
	if res.Changed() {
		if raw, err = m.val.AppendEvent(make([]byte, 0, len(buf)), ev, &res); err != nil {
			return backfill.Event{}, "", err
		}
		m.countRepairs(&res)
	} else {
		raw = bytes.Clone(buf)
	}
	return backfill.Event{
		Raw: raw, DeviceID: res.DeviceID, UserID: res.UserID, InsertID: res.InsertID,
		EventType: res.EventType, Time: res.Time, Pos: rec.Pos,
		Profile: st.profile,
	}, "", nil
}
