package uploader_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/uploader"

	"github.com/backfillhq/backfill/internal/testutil"

	"github.com/backfillhq/backfill/internal/redact"
)

// ids maps original indexes to insert ids, for comparing with what the
// server saw.
func ids(idx ...int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = fmt.Sprintf("id-%d", i)
	}
	return out
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func rej(i int, reason string, status int) uploader.Rejection {
	return uploader.Rejection{Index: i, Reason: reason, Status: status}
}

// checkPartition asserts that, with a nil error, every index of n events is
// in exactly one outcome list, and in all cases that no index is in two.
func checkPartition(t *testing.T, res uploader.Result, n int, complete bool) {
	t.Helper()
	where := make(map[int]string)
	put := func(i int, list string) {
		if i < 0 || i >= n {
			t.Errorf("%s has index %d out of range [0,%d)", list, i, n)
			return
		}
		if prev, dup := where[i]; dup {
			t.Errorf("index %d is in both %s and %s", i, prev, list)
		}
		where[i] = list
	}
	for _, i := range res.Accepted {
		put(i, "Accepted")
	}
	for _, r := range res.Rejected {
		put(r.Index, "Rejected")
	}
	for _, i := range res.Throttled {
		put(i, "Throttled")
	}
	for _, i := range res.Parked {
		put(i, "Parked")
	}
	if complete && len(where) != n {
		t.Errorf("%d of %d indexes settled, want all", len(where), n)
	}
}

func TestSendClassification(t *testing.T) {
	hangup := reply{hangup: true}
	tests := []struct {
		name    string
		n       int
		events  func([]backfill.Event) // adjusts the events
		replies []reply
		opts    func(*uploader.Options)

		wantAccepted  []int
		wantRejected  []uploader.Rejection
		wantThrottled []int
		wantParked    []int
		wantPause     string // fmt of PauseDevices, PauseUsers, PauseFor
		wantQuota     string // fmt of QuotaDevices, QuotaUsers
		wantSent      [][]int
		wantResponses map[int]int
		wantSplits    int
		wantErr       error
		wantStatus    int // StatusError.Status when wantErr is a sentinel
	}{
		{
			name: "OK", n: 3, replies: []reply{r(200, body200)},
			wantAccepted: seq(3), wantSent: [][]int{seq(3)}, wantResponses: map[int]int{200: 1},
		},
		{
			name: "OK2xx", n: 2, replies: []reply{r(202, "")},
			wantAccepted: seq(2), wantSent: [][]int{seq(2)}, wantResponses: map[int]int{202: 1},
		},
		{
			name: "OK200NotJSON", n: 2, replies: []reply{r(200, "<html>ok</html>")},
			wantAccepted: seq(2), wantSent: [][]int{seq(2)}, wantResponses: map[int]int{200: 1},
		},
		{
			name: "400Fields", n: 5, replies: []reply{r(400, body400Fields), r(200, body200)},
			wantAccepted: []int{0, 3},
			wantRejected: []uploader.Rejection{
				rej(1, "invalid field time", 400), rej(2, "missing field event_type", 400), rej(4, "invalid field time", 400)},
			wantSent: [][]int{seq(5), {0, 3}}, wantResponses: map[int]int{400: 1, 200: 1},
		},
		{
			// HTTP V2 lists only the first bad event per field: loop.
			name: "400FirstIndexOnly", n: 5,
			replies: []reply{
				r(400, `{"code":400,"error":"Invalid field values on some events","events_with_invalid_fields":{"time":[1]}}`),
				r(400, `{"code":400,"error":"Invalid field values on some events","events_with_invalid_fields":{"time":[2]}}`),
				r(200, body200),
			},
			wantAccepted: []int{0, 2, 4},
			wantRejected: []uploader.Rejection{rej(1, "invalid field time", 400), rej(3, "invalid field time", 400)},
			wantSent:     [][]int{seq(5), {0, 2, 3, 4}, {0, 2, 4}}, wantResponses: map[int]int{400: 2, 200: 1},
		},
		{
			name: "400IDLengths", n: 4,
			replies: []reply{
				r(400, `{"code":400,"error":"Invalid field values on some events","events_with_invalid_id_lengths":{"user_id":[0],"device_id":[0,3]}}`),
				r(200, body200),
			},
			wantAccepted: []int{1, 2},
			wantRejected: []uploader.Rejection{
				rej(0, "invalid id length device_id; invalid id length user_id", 400), rej(3, "invalid id length device_id", 400)},
			wantSent: [][]int{seq(4), {1, 2}}, wantResponses: map[int]int{400: 1, 200: 1},
		},
		{
			name: "400Silenced", n: 5,
			events: func(evs []backfill.Event) {
				evs[1].DeviceID = "dev-spam-77" // not in silenced_events, but its device is silenced
			},
			replies:      []reply{r(400, body400Silenced), r(200, body200)},
			wantAccepted: []int{2, 4},
			wantRejected: []uploader.Rejection{
				rej(0, "silenced device", 400), rej(1, "silenced device", 400), rej(3, "silenced device", 400)},
			wantSent: [][]int{seq(5), {2, 4}}, wantResponses: map[int]int{400: 1, 200: 1},
		},
		{
			name: "400AllRejected", n: 2,
			replies: []reply{r(400, `{"code":400,"error":"Invalid field values on some events","events_with_missing_fields":{"event_type":[0,1]}}`)},
			wantRejected: []uploader.Rejection{
				rej(0, "missing field event_type", 400), rej(1, "missing field event_type", 400)},
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1},
		},
		{name: "400MissingField", n: 2, replies: []reply{r(400, body400Missing)}, wantErr: uploader.ErrFatal, wantStatus: 400,
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "400InvalidAPIKey", n: 2, replies: []reply{r(400, body400Key)}, wantErr: uploader.ErrFatal, wantStatus: 400,
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "400InvalidJSON", n: 2, replies: []reply{r(400, body400JSON)}, wantErr: uploader.ErrFatal, wantStatus: 400,
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "400MissingBody", n: 2, replies: []reply{r(400, body400NoBody)}, wantErr: uploader.ErrFatal, wantStatus: 400,
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "400InvalidPath", n: 2, replies: []reply{r(400, body400Path)}, wantErr: uploader.ErrFatal, wantStatus: 400,
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "400InvalidEventJSON", n: 2, replies: []reply{r(400, body400EventJSON)}, wantErr: uploader.ErrFatal, wantStatus: 400,
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "400NoIndexes", n: 2, replies: []reply{r(400, `{"code":400,"error":"Invalid field values on some events"}`)},
			wantErr: uploader.ErrFatal, wantStatus: 400, wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "400IndexesOutOfRange", n: 2,
			replies: []reply{r(400, `{"code":400,"error":"Invalid field values on some events","events_with_invalid_fields":{"time":[2,-1]}}`)},
			wantErr: uploader.ErrFatal, wantStatus: 400, wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "400NotJSON", n: 2, replies: []reply{r(400, "<html>400 Bad Request</html>")},
			wantErr: uploader.ErrFatal, wantStatus: 400, wantSent: [][]int{seq(2)}, wantResponses: map[int]int{400: 1}},
		{name: "403", n: 2, replies: []reply{r(403, body403)}, wantErr: uploader.ErrFatal, wantStatus: 403,
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{403: 1}},
		{name: "404Proxy", n: 2, replies: []reply{r(404, "not found")}, wantErr: uploader.ErrFatal, wantStatus: 404,
			wantSent: [][]int{seq(2)}, wantResponses: map[int]int{404: 1}},
		{
			name: "413Split", n: 5, replies: []reply{r(413, body413), r(200, body200), r(200, body200)},
			wantAccepted: seq(5), wantSent: [][]int{seq(5), {0, 1}, {2, 3, 4}}, wantSplits: 1,
			wantResponses: map[int]int{413: 1, 200: 2},
		},
		{
			name: "413SplitNotJSON", n: 2, replies: []reply{r(413, "<html>Request Entity Too Large</html>")},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), {0}, {1}}, wantSplits: 1,
			wantResponses: map[int]int{413: 1, 200: 2},
		},
		{
			name: "413SingleEvent", n: 1, replies: []reply{r(413, body413)},
			wantRejected: []uploader.Rejection{rej(0, "payload too large", 413)},
			wantSent:     [][]int{{0}}, wantResponses: map[int]int{413: 1},
		},
		{
			name: "413Twice", n: 2, replies: []reply{r(413, body413), r(413, body413), r(200, body200)},
			wantAccepted: []int{1}, wantRejected: []uploader.Rejection{rej(0, "payload too large", 413)},
			wantSent: [][]int{seq(2), {0}, {1}}, wantSplits: 1, wantResponses: map[int]int{413: 2, 200: 1},
		},
		{
			name: "429Throttled", n: 5, replies: []reply{r(429, body429), r(200, body200)},
			wantAccepted: []int{1, 3, 4}, wantThrottled: []int{0, 2},
			wantPause: "[dev-0] [user-2] 30s", wantQuota: "[] []",
			wantSent: [][]int{seq(5), {1, 3, 4}}, wantResponses: map[int]int{429: 1, 200: 1},
		},
		{
			name: "429ThrottledCustomPause", n: 3, opts: func(o *uploader.Options) { o.ThrottlePause = 15 * time.Second },
			replies:      []reply{r(429, body429), r(200, body200)},
			wantAccepted: []int{1}, wantThrottled: []int{0, 2},
			wantPause: "[dev-0] [user-2] 15s", wantQuota: "[] []",
			wantSent: [][]int{seq(3), {1}}, wantResponses: map[int]int{429: 1, 200: 1},
		},
		{
			// The maps name dev-3 although throttled_events does not.
			name: "429ThrottledByID", n: 4,
			replies: []reply{
				r(429, `{"code":429,"error":"Too many requests for some devices and users","throttled_devices":{"dev-3":40},"throttled_events":[]}`),
				r(200, body200)},
			wantAccepted: []int{0, 1, 2}, wantThrottled: []int{3},
			wantPause: "[dev-3] [] 30s", wantQuota: "[] []",
			wantSent: [][]int{seq(4), {0, 1, 2}}, wantResponses: map[int]int{429: 1, 200: 1},
		},
		{
			name: "429DailyQuota", n: 5, replies: []reply{r(429, body429Quota), r(200, body200)},
			wantAccepted: []int{0, 2, 3, 4}, wantParked: []int{1},
			wantPause: "[] [] 0s", wantQuota: "[] [user-1]",
			wantSent: [][]int{seq(5), {0, 2, 3, 4}}, wantResponses: map[int]int{429: 1, 200: 1},
		},
		{
			name: "429AllThrottled", n: 1, replies: []reply{r(429, body429)},
			wantThrottled: []int{0}, wantPause: "[dev-0] [user-2] 30s", wantQuota: "[] []",
			wantSent: [][]int{{0}}, wantResponses: map[int]int{429: 1},
		},
		{
			name: "429NoEventsRetried", n: 2, replies: []reply{r(429, body429Empty), r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{429: 1, 200: 1},
		},
		{
			name: "429NotJSONRetried", n: 2, replies: []reply{r(429, "slow down"), r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{429: 1, 200: 1},
		},
		{
			name: "408Retried", n: 2, replies: []reply{r(408, ""), r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{408: 1, 200: 1},
		},
		{
			name: "500Retried", n: 2, replies: []reply{r(500, `{"code":500,"error":"Internal server error"}`), r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{500: 1, 200: 1},
		},
		{
			name: "502NotJSONRetried", n: 2, replies: []reply{r(502, "<html>Bad Gateway</html>"), r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{502: 1, 200: 1},
		},
		{
			name: "503Retried", n: 2, replies: []reply{r(503, `{"code":503,"error":"Service unavailable"}`), r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{503: 1, 200: 1},
		},
		{
			name: "504Retried", n: 2, replies: []reply{r(504, ""), r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{504: 1, 200: 1},
		},
		{
			name: "NetworkErrorRetried", n: 2, replies: []reply{hangup, r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{0: 1, 200: 1},
		},
		{
			name: "TimeoutRetried", n: 2, replies: []reply{{hang: true}, r(200, body200)},
			opts: func(o *uploader.Options) {
				hc := *o.HTTPClient
				hc.Timeout = 300 * time.Millisecond
				o.HTTPClient = &hc
			},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{0: 1, 200: 1},
		},
		{
			name: "TruncatedResponseRetried", n: 2, replies: []reply{{status: 200, body: body200[:10], truncate: true}, r(200, body200)},
			wantAccepted: seq(2), wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{0: 1, 200: 1},
		},
		{
			name: "500Exhausted", n: 2, opts: func(o *uploader.Options) { o.MaxAttempts = 3 },
			replies:  []reply{r(500, ""), r(500, ""), r(500, "")},
			wantSent: [][]int{seq(2), seq(2), seq(2)}, wantResponses: map[int]int{500: 3},
			wantErr: uploader.ErrRetriesExhausted, wantStatus: 500,
		},
		{
			name: "NetworkExhausted", n: 2, opts: func(o *uploader.Options) { o.MaxAttempts = 2 },
			replies:  []reply{hangup, hangup},
			wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{0: 2},
			wantErr: uploader.ErrRetriesExhausted, wantStatus: 0,
		},
		{
			name: "429NoEventsExhausted", n: 2, opts: func(o *uploader.Options) { o.MaxAttempts = 2 },
			replies:  []reply{r(429, body429Empty), r(429, body429Empty)},
			wantSent: [][]int{seq(2), seq(2)}, wantResponses: map[int]int{429: 2},
			wantErr: uploader.ErrRetriesExhausted, wantStatus: 429,
		},
		{
			// Progress resets the attempt count: 1 failure, partial 400, 1 failure, 200.
			name: "AttemptsPerBody", n: 3, opts: func(o *uploader.Options) { o.MaxAttempts = 2 },
			replies: []reply{r(503, ""), r(400, `{"code":400,"error":"x","events_with_invalid_fields":{"time":[0]}}`),
				r(503, ""), r(200, body200)},
			wantAccepted: []int{1, 2}, wantRejected: []uploader.Rejection{rej(0, "invalid field time", 400)},
			wantSent:      [][]int{seq(3), seq(3), {1, 2}, {1, 2}},
			wantResponses: map[int]int{503: 2, 400: 1, 200: 1},
		},
		{
			name: "SettledBeforeFatal", n: 3,
			replies:      []reply{r(400, `{"code":400,"error":"x","events_with_invalid_fields":{"time":[0]}}`), r(403, body403)},
			wantRejected: []uploader.Rejection{rej(0, "invalid field time", 400)},
			wantSent:     [][]int{seq(3), {1, 2}}, wantResponses: map[int]int{400: 1, 403: 1},
			wantErr: uploader.ErrFatal, wantStatus: 403,
		},
		{
			name: "SettledBeforeExhausted", n: 4, opts: func(o *uploader.Options) { o.MaxAttempts = 2 },
			replies:      []reply{r(413, body413), r(200, body200), r(500, ""), r(500, "")},
			wantAccepted: []int{0, 1},
			wantSent:     [][]int{seq(4), {0, 1}, {2, 3}, {2, 3}}, wantSplits: 1,
			wantResponses: map[int]int{413: 1, 200: 1, 500: 2},
			wantErr:       uploader.ErrRetriesExhausted, wantStatus: 500,
		},
		{
			name: "Empty", n: 0, wantResponses: map[int]int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tt.replies...)
			var logs testutil.SyncBuffer
			c, sl := newClient(t, srv, &logs, tt.opts)
			events := makeEvents(tt.n)
			if tt.events != nil {
				tt.events(events)
			}
			res, err := c.Send(context.Background(), backfill.RouteBatch, events)

			if tt.wantErr == nil && err != nil {
				t.Fatalf("Send: %v", err)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Send err = %v, want %v", err, tt.wantErr)
				}
				var se *uploader.StatusError
				if !errors.As(err, &se) {
					t.Fatalf("Send err %T is not a *StatusError", err)
				}
				if se.Status != tt.wantStatus {
					t.Errorf("StatusError.Status = %d, want %d", se.Status, tt.wantStatus)
				}
				if se.Message == "" {
					t.Errorf("StatusError.Message is empty")
				}
			}
			checkPartition(t, res, tt.n, err == nil)
			if got, want := fmt.Sprint(res.Accepted), fmt.Sprint(tt.wantAccepted); got != want {
				t.Errorf("Accepted = %v, want %v", got, want)
			}
			if got, want := fmt.Sprint(res.Rejected), fmt.Sprint(tt.wantRejected); got != want {
				t.Errorf("Rejected = %v, want %v", got, want)
			}
			if got, want := fmt.Sprint(res.Throttled), fmt.Sprint(tt.wantThrottled); got != want {
				t.Errorf("Throttled = %v, want %v", got, want)
			}
			if got, want := fmt.Sprint(res.Parked), fmt.Sprint(tt.wantParked); got != want {
				t.Errorf("Parked = %v, want %v", got, want)
			}
			if tt.wantPause != "" {
				if got := fmt.Sprint(res.PauseDevices, " ", res.PauseUsers, " ", res.PauseFor); got != tt.wantPause {
					t.Errorf("pause = %q, want %q", got, tt.wantPause)
				}
			}
			if tt.wantQuota != "" {
				if got := fmt.Sprint(res.QuotaDevices, " ", res.QuotaUsers); got != tt.wantQuota {
					t.Errorf("quota = %q, want %q", got, tt.wantQuota)
				}
			}
			reqs := srv.requests()
			var sent [][]string
			for _, rq := range reqs {
				sent = append(sent, rq.IDs)
			}
			var wantSent [][]string
			for _, idx := range tt.wantSent {
				wantSent = append(wantSent, ids(idx...))
			}
			if got, want := fmt.Sprint(sent), fmt.Sprint(wantSent); got != want {
				t.Errorf("requests carried %v, want %v", got, want)
			}
			st := res.Stats
			if got, want := st.Requests, len(tt.wantSent); got != want {
				t.Errorf("Stats.Requests = %d, want %d", got, want)
			}
			if got, want := fmt.Sprint(st.Responses), fmt.Sprint(tt.wantResponses); got != want {
				t.Errorf("Stats.Responses = %v, want %v", got, want)
			}
			if got, want := st.Splits, tt.wantSplits; got != want {
				t.Errorf("Stats.Splits = %d, want %d", got, want)
			}
			if got, want := st.Status429, tt.wantResponses[429]; got != want {
				t.Errorf("Stats.Status429 = %d, want %d", got, want)
			}
			var wire int64
			for _, rq := range reqs {
				wire += int64(len(rq.Wire))
			}
			if st.BytesSent != wire {
				t.Errorf("Stats.BytesSent = %d, server got %d", st.BytesSent, wire)
			}
			// Every retry is a re-send of the previous body after one sleep.
			retries := 0
			for k := 1; k < len(reqs); k++ {
				if string(reqs[k].Wire) == string(reqs[k-1].Wire) {
					retries++
				}
			}
			if st.Retries != retries || len(sl.all()) != retries {
				t.Errorf("Stats.Retries = %d, sleeps = %d, identical re-sends = %d", st.Retries, len(sl.all()), retries)
			}
			// One log record per non-2xx response (network errors included).
			non2xx := 0
			for status, n := range st.Responses {
				if status < 200 || status >= 300 {
					non2xx += n
				}
			}
			if got := strings.Count(logs.String(), "msg=\"amplitude response\""); got != non2xx {
				t.Errorf("%d log records for %d non-2xx responses:\n%s", got, non2xx, logs.String())
			}
			if non2xx > 0 && !strings.Contains(logs.String(), "component=uploader") {
				t.Errorf("logs lack component=uploader:\n%s", logs.String())
			}
			// The key never leaks.
			leak := logs.String()
			if err != nil {
				leak += err.Error()
			}
			for _, rj := range res.Rejected {
				leak += rj.Reason
			}
			if strings.Contains(leak, testKey) {
				t.Errorf("API key leaked:\n%s", leak)
			}
		})
	}
}

func TestSendInvalidKeyRedacted(t *testing.T) {
	srv := newServer(t, r(400, body400Key))
	var logs testutil.SyncBuffer
	c, _ := newClient(t, srv, &logs, nil)
	_, err := c.Send(context.Background(), backfill.RouteHTTP, makeEvents(1))
	if !errors.Is(err, uploader.ErrFatal) {
		t.Fatalf("err = %v, want ErrFatal", err)
	}
	msg := err.Error()
	if strings.Contains(msg, testKey) || !strings.Contains(msg, "Invalid API key: "+redact.Mask) {
		t.Errorf("err = %q, want the key replaced by %s", msg, redact.Mask)
	}
	if l := logs.String(); strings.Contains(l, testKey) || !strings.Contains(l, redact.Mask) || !strings.Contains(l, "component=uploader") {
		t.Errorf("logs = %q, want redacted key and component=uploader", l)
	}
	if rq := srv.requests(); len(rq) != 1 || rq[0].Path != "/2/httpapi" || rq[0].Key != testKey {
		t.Errorf("server saw %+v, want one /2/httpapi request carrying the key", rq)
	}
}

func TestSendLogsNetworkErrorWithoutKey(t *testing.T) {
	// A key that is also part of the URL would show in transport errors.
	srv := newServer(t, reply{hangup: true}, r(200, body200))
	var logs testutil.SyncBuffer
	c, _ := newClient(t, srv, &logs, func(o *uploader.Options) {
		o.Endpoint = srv.URL + "/" + testKey
	})
	if _, err := c.Send(context.Background(), backfill.RouteBatch, makeEvents(1)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	l := logs.String()
	if strings.Contains(l, testKey) || !strings.Contains(l, "status=0") {
		t.Errorf("logs = %q, want a status=0 record without the key", l)
	}
}

func TestSendStatusFromStatusLine(t *testing.T) {
	// The body claims 200 but the status line says 503: retry.
	srv := newServer(t, r(503, body200), r(200, `{"code":503}`))
	c, _ := newClient(t, srv, nil, nil)
	res, err := c.Send(context.Background(), backfill.RouteBatch, makeEvents(2))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got, want := fmt.Sprint(res.Accepted, res.Stats.Requests), "[0 1] 2"; got != want {
		t.Errorf("accepted, requests = %s, want %s", got, want)
	}
}

func TestSendUnknownRoute(t *testing.T) {
	srv := newServer(t)
	c, _ := newClient(t, srv, nil, nil)
	if _, err := c.Send(context.Background(), backfill.Route(9), makeEvents(1)); err == nil {
		t.Fatal("Send with route 9 succeeded")
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("%d requests sent for an unknown route", n)
	}
}

func TestStatusError(t *testing.T) {
	cause := errors.New("connection reset")
	e := &uploader.StatusError{Status: 0, Message: "reset", Err: uploader.ErrRetriesExhausted, Cause: cause}
	if !errors.Is(e, uploader.ErrRetriesExhausted) || !errors.Is(e, cause) || errors.Is(e, uploader.ErrFatal) {
		t.Errorf("errors.Is on %v: want ErrRetriesExhausted and the cause only", e)
	}
	f := &uploader.StatusError{Status: 403, Message: "Forbidden", Err: uploader.ErrFatal}
	if got, want := f.Error(), "amplitude: fatal response: status 403: Forbidden"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestSendHeaders(t *testing.T) {
	srv := newServer(t)
	c, _ := newClient(t, srv, nil, func(o *uploader.Options) { o.UserAgent = "backfill/1.2.3" })
	if _, err := c.Send(context.Background(), backfill.RouteBatch, makeEvents(1)); err != nil {
		t.Fatal(err)
	}
	h := srv.requests()[0].Header
	for k, want := range map[string]string{
		"Content-Type": "application/json", "Accept": "*/*", "User-Agent": "backfill/1.2.3", "Content-Encoding": "",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if p := srv.requests()[0].Path; p != "/batch" {
		t.Errorf("path = %q, want /batch", p)
	}
}

// TestSendRetriesIdenticalBytes checks that every retry re-sends the same
// bytes, with and without gzip, and that a gzip body decompresses to the
// plain body.
func TestSendRetriesIdenticalBytes(t *testing.T) {
	var plain []byte
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			srv := newServer(t, r(503, ""), r(500, ""), reply{hangup: true}, r(408, ""), r(200, body200))
			c, _ := newClient(t, srv, nil, func(o *uploader.Options) { o.Gzip = gz; o.MinIDLength = 3 })
			res, err := c.Send(context.Background(), backfill.RouteBatch, makeEvents(50))
			if err != nil {
				t.Fatal(err)
			}
			if res.Stats.Retries != 4 || len(res.Accepted) != 50 {
				t.Fatalf("retries=%d accepted=%d, want 4 and 50", res.Stats.Retries, len(res.Accepted))
			}
			reqs := srv.requests()
			for k, rq := range reqs {
				if string(rq.Wire) != string(reqs[0].Wire) {
					t.Errorf("request %d body differs from the first", k)
				}
				if got, want := rq.Header.Get("Content-Encoding"), map[bool]string{true: "gzip"}[gz]; got != want {
					t.Errorf("Content-Encoding = %q, want %q", got, want)
				}
			}
			if gz {
				if string(reqs[0].Wire) == string(reqs[0].JSON) || len(reqs[0].Wire) >= len(reqs[0].JSON) {
					t.Errorf("gzip body is not compressed (%d wire bytes for %d JSON)", len(reqs[0].Wire), len(reqs[0].JSON))
				}
				if string(reqs[0].JSON) != string(plain) {
					t.Errorf("gunzipped body differs from the plain body")
				}
				if got, want := res.Stats.BytesSent, int64(5*len(reqs[0].Wire)); got != want {
					t.Errorf("BytesSent = %d, want %d (compressed)", got, want)
				}
			} else {
				plain = reqs[0].JSON
			}
			if got := string(reqs[0].Options); got != `{"min_id_length":3}` {
				t.Errorf("options = %s", got)
			}
		})
	}
}

func TestSendBackoff(t *testing.T) {
	script := []reply{}
	for range 11 {
		script = append(script, r(503, ""))
	}
	srv := newServer(t, append(script, r(200, body200))...)
	c, sl := newClient(t, srv, nil, nil) // default Backoff, default MaxAttempts 12
	res, err := c.Send(context.Background(), backfill.RouteBatch, makeEvents(1))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.Stats.Requests != 12 {
		t.Errorf("requests = %d, want 12", res.Stats.Requests)
	}
	ds := sl.all()
	if len(ds) != 11 {
		t.Fatalf("%d sleeps, want 11", len(ds))
	}
	bound := uploader.DefaultBackoffBase
	for k, d := range ds {
		if d < bound/2 || d > bound {
			t.Errorf("sleep %d = %v, want in [%v, %v]", k+1, d, bound/2, bound)
		}
		// Below the cap the bound doubles, so equal jitter never shrinks.
		if k > 0 && bound < uploader.DefaultBackoffCap && d < ds[k-1] {
			t.Errorf("sleep %d = %v shrank from %v", k+1, d, ds[k-1])
		}
		bound = min(2*bound, uploader.DefaultBackoffCap)
	}
	if last := ds[len(ds)-1]; last < uploader.DefaultBackoffCap/2 {
		t.Errorf("last sleep %v, want it near the cap %v", last, uploader.DefaultBackoffCap)
	}
}

func TestSendCustomBackoff(t *testing.T) {
	srv := newServer(t, r(500, ""), r(500, ""), r(200, body200))
	c, sl := newClient(t, srv, nil, func(o *uploader.Options) {
		o.Backoff = func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	})
	if _, err := c.Send(context.Background(), backfill.RouteBatch, makeEvents(1)); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(sl.all()), "[1ms 2ms]"; got != want {
		t.Errorf("sleeps = %s, want %s", got, want)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for attempt := 0; attempt <= 40; attempt++ {
		bound := uploader.DefaultBackoffBase
		for i := 1; i < attempt; i++ {
			bound = min(2*bound, uploader.DefaultBackoffCap)
		}
		for range 50 {
			if d := uploader.DefaultBackoff(attempt); d < bound/2 || d > bound {
				t.Fatalf("DefaultBackoff(%d) = %v, want in [%v, %v]", attempt, d, bound/2, bound)
			}
		}
	}
}

func TestSendContextCanceled(t *testing.T) {
	t.Run("InFlight", func(t *testing.T) {
		srv := newServer(t, reply{hang: true})
		srv.seen = make(chan struct{}, 1)
		c, _ := newClient(t, srv, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := c.Send(ctx, backfill.RouteBatch, makeEvents(3))
			done <- err
		}()
		<-srv.seen
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Send did not return after cancel")
		}
	})
	t.Run("DuringBackoff", func(t *testing.T) {
		// Default (real) sleep with an hour-long backoff: cancel must cut it.
		srv := newServer(t, r(503, ""))
		srv.seen = make(chan struct{}, 1)
		c, err := uploader.New(uploader.Options{
			Endpoint: srv.URL, APIKey: testKey, HTTPClient: srv.Client(),
			Backoff: func(int) time.Duration { return time.Hour },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var res uploader.Result
		go func() {
			var err error
			res, err = c.Send(ctx, backfill.RouteBatch, makeEvents(3))
			done <- err
		}()
		<-srv.seen
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			checkPartition(t, res, 3, false)
			if len(res.Accepted) != 0 {
				t.Errorf("Accepted = %v after cancel, want none", res.Accepted)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Send did not return after cancel")
		}
	})
	t.Run("Before", func(t *testing.T) {
		srv := newServer(t)
		c, _ := newClient(t, srv, nil, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Send(ctx, backfill.RouteBatch, makeEvents(1)); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if n := len(srv.requests()); n != 0 {
			t.Errorf("%d requests after cancel, want 0", n)
		}
	})
}

func TestSendPresplit(t *testing.T) {
	t.Run("MaxEvents", func(t *testing.T) {
		srv := newServer(t)
		c, _ := newClient(t, srv, nil, nil)
		res, err := c.Send(context.Background(), backfill.RouteBatch, makeEvents(4500))
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for _, rq := range srv.requests() {
			sizes = append(sizes, len(rq.IDs))
		}
		if got, want := fmt.Sprint(sizes), "[2000 2000 500]"; got != want {
			t.Errorf("request sizes = %s, want %s", got, want)
		}
		checkPartition(t, res, 4500, true)
	})
	t.Run("MaxHTTPBytes", func(t *testing.T) {
		srv := newServer(t)
		c, _ := newClient(t, srv, nil, nil)
		events := makeEvents(7)
		pad := strings.Repeat("x", 300_000)
		for i := range events {
			events[i].Raw = []byte(fmt.Sprintf(`{"event_type":"e","device_id":"dev-%d","insert_id":"id-%d","event_properties":{"p":%q}}`, i, i, pad))
		}
		res, err := c.Send(context.Background(), backfill.RouteHTTP, events)
		if err != nil {
			t.Fatal(err)
		}
		checkPartition(t, res, 7, true)
		var sizes []int
		for _, rq := range srv.requests() {
			if len(rq.JSON) > uploader.MaxHTTPBytes {
				t.Errorf("request of %d bytes > MaxHTTPBytes", len(rq.JSON))
			}
			sizes = append(sizes, len(rq.IDs))
		}
		if got, want := fmt.Sprint(sizes), "[3 3 1]"; got != want {
			t.Errorf("request sizes = %s, want %s", got, want)
		}
	})
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		opts uploader.Options
		ok   bool
	}{
		{"OK", uploader.Options{APIKey: "k"}, true},
		{"EU", uploader.Options{APIKey: "k", Endpoint: uploader.EUEndpoint}, true},
		{"NoKey", uploader.Options{}, false},
		{"KeySpaces", uploader.Options{APIKey: " k"}, false},
		{"BadEndpoint", uploader.Options{APIKey: "k", Endpoint: "api2.amplitude.com"}, false},
		{"EndpointQuery", uploader.Options{APIKey: "k", Endpoint: "https://x/?a=b"}, false},
		{"NegativeMinID", uploader.Options{APIKey: "k", MinIDLength: -1}, false},
		{"NegativeAttempts", uploader.Options{APIKey: "k", MaxAttempts: -1}, false},
		{"NegativePause", uploader.Options{APIKey: "k", ThrottlePause: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := uploader.New(tt.opts)
			if (err == nil) != tt.ok {
				t.Errorf("New err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestSendConcurrent shares one Client between lanes, as the pipeline does.
func TestSendConcurrent(t *testing.T) {
	srv := newServer(t)
	c, _ := newClient(t, srv, nil, func(o *uploader.Options) { o.Gzip = true })
	const lanes = 4
	errs := make(chan error, lanes)
	for range lanes {
		go func() {
			for range 5 {
				res, err := c.Send(context.Background(), backfill.RouteBatch, makeEvents(50))
				if err == nil && len(res.Accepted) != 50 {
					err = fmt.Errorf("accepted %d of 50", len(res.Accepted))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range lanes {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := len(srv.requests()); n != lanes*5 {
		t.Errorf("server got %d requests, want %d", n, lanes*5)
	}
}
