package checkpoint_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/memblob"

	"github.com/backfillhq/backfill/checkpoint"

	"github.com/backfillhq/backfill/internal/testutil"
)

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// state returns a small state whose counters identify it.
func state(id int64) *checkpoint.State {
	return &checkpoint.State{
		Job:     checkpoint.Fingerprint("s3://src", "eps=300"),
		JobDesc: map[string]string{"--eps": "300"},
		Objects: map[string]*checkpoint.Object{
			obj: {Fingerprint: "etag1", Watermark: id, ResumeRecord: id, ResumeOffset: id * 100, Settled: [][2]int64{{id + 2, id + 5}}, Total: -1},
		},
		Counters:       checkpoint.Counters{EventsRead: id},
		DeadLetterSize: id * 10,
		Started:        t0,
		Updated:        t0.Add(time.Duration(id) * time.Second),
		RunCount:       1,
	}
}

func mustLoad(t *testing.T, s *checkpoint.Store) *checkpoint.State {
	t.Helper()
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

func quietLogger(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

// location is a way to open two Stores on the same place.
type location struct {
	name string
	open func(t *testing.T, opts checkpoint.Options) *checkpoint.Store
}

func locations(t *testing.T) []location {
	dir, fileDir := t.TempDir(), t.TempDir()
	mem := memblob.OpenBucket(nil)
	t.Cleanup(func() { mem.Close() })
	var s3url string
	openURL := func(u func() string) func(t *testing.T, opts checkpoint.Options) *checkpoint.Store {
		return func(t *testing.T, opts checkpoint.Options) *checkpoint.Store {
			t.Helper()
			s, err := checkpoint.Open(context.Background(), u(), opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
	}
	return []location{
		{name: "Dir", open: openURL(func() string { return dir })},
		{name: "FileURL", open: openURL(func() string { return "file://" + filepath.ToSlash(fileDir) })},
		{name: "Memblob", open: func(t *testing.T, opts checkpoint.Options) *checkpoint.Store {
			opts.Bucket = blob.PrefixedBucket(mem, "state/job1/")
			return openURL(func() string { return "mem://" })(t, opts)
		}},
		{name: "S3", open: openURL(func() string {
			if s3url == "" {
				s3url = testutil.StartS3(t, "ckpt").URL("ckpt", "state/job1")
			}
			return s3url
		})},
	}
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, loc := range locations(t) {
		t.Run(loc.name, func(t *testing.T) {
			s := loc.open(t, checkpoint.Options{})
			if _, err := s.Load(ctx); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
				t.Fatalf("Load on empty store: %v, want ErrNoCheckpoint", err)
			}
			for id := int64(1); id <= 3; id++ {
				if err := s.Save(ctx, state(id)); err != nil {
					t.Fatalf("Save %d: %v", id, err)
				}
			}
			// A second Store on the same location sees the newest state.
			got := mustLoad(t, loc.open(t, checkpoint.Options{}))
			if got.Version != checkpoint.CurrentVersion || got.Counters.EventsRead != 3 ||
				got.Objects[obj].Settled[0] != [2]int64{5, 8} || !got.Started.Equal(t0) || got.JobDesc["--eps"] != "300" {
				t.Fatalf("loaded %+v", got)
			}
		})
	}
}

func TestStoreURLPrefixURLMem(t *testing.T) {
	ctx := context.Background()
	s, err := checkpoint.Open(ctx, "mem://bucket/state/job1", checkpoint.Options{Name: checkpoint.ShardName(1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save(ctx, state(4)); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, s); got.Counters.EventsRead != 4 {
		t.Fatalf("loaded %+v", got)
	}
	if got := s.String(); got != "mem://bucket/state/job1 (shard-1-of-2)" {
		t.Fatalf("String()=%q", got)
	}
}

func TestStoreShards(t *testing.T) {
	ctx := context.Background()
	for _, loc := range locations(t) {
		t.Run(loc.name, func(t *testing.T) {
			for i := 1; i <= 3; i++ {
				s := loc.open(t, checkpoint.Options{Name: checkpoint.ShardName(i, 3)})
				if err := s.Save(ctx, state(int64(i))); err != nil {
					t.Fatal(err)
				}
				if err := s.Save(ctx, state(int64(10*i))); err != nil {
					t.Fatal(err)
				}
			}
			root := loc.open(t, checkpoint.Options{})
			if _, err := root.Load(ctx); !errors.Is(err, checkpoint.ErrNoCheckpoint) {
				t.Fatalf("root Load: %v, want ErrNoCheckpoint (shards write under their own key)", err)
			}
			all, err := root.LoadAll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 3 {
				t.Fatalf("LoadAll: %d states, want 3", len(all))
			}
			for i := 1; i <= 3; i++ {
				st := all[checkpoint.ShardName(i, 3)]
				if st == nil || st.Counters.EventsRead != int64(10*i) {
					t.Fatalf("shard %d: %+v", i, st)
				}
			}
		})
	}
}

func TestOpenBadName(t *testing.T) {
	for _, name := range []string{"../x", "a/b", ".hidden", "a b"} {
		if _, err := checkpoint.Open(context.Background(), t.TempDir(), checkpoint.Options{Name: name}); !errors.Is(err, checkpoint.ErrBadName) {
			t.Errorf("Open name %q: %v, want ErrBadName", name, err)
		}
	}
}

// TestLocalCrash simulates the states a kill -9 can leave a local store in.
func TestLocalCrash(t *testing.T) {
	future := []byte(`{"version":99,"job_fingerprint":"x","objects":{}}`)
	tests := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		wantID   int64 // EventsRead of the state Load must return
		wantErr  error
		wantWarn string
	}{
		{name: "TempFileLeftBehind", damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "state.json.tmp-123"), []byte(`{"version":1,"obj`))
		}, wantID: 2},
		{name: "CorruptNewest", damage: func(t *testing.T, dir string) {
			truncateHalf(t, filepath.Join(dir, checkpoint.StateFile))
		}, wantID: 1, wantWarn: "unreadable"},
		{name: "CrashBetweenRenames", damage: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, checkpoint.StateFile)); err != nil {
				t.Fatal(err)
			}
		}, wantID: 1, wantWarn: "missing"},
		{name: "EmptyNewest", damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, checkpoint.StateFile), nil)
		}, wantID: 1, wantWarn: "unreadable"},
		{name: "BothCorrupt", damage: func(t *testing.T, dir string) {
			truncateHalf(t, filepath.Join(dir, checkpoint.StateFile))
			truncateHalf(t, filepath.Join(dir, checkpoint.PrevFile))
		}, wantErr: checkpoint.ErrCorrupt},
		{name: "FutureVersion", damage: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, checkpoint.StateFile), future)
		}, wantErr: checkpoint.ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var logs bytes.Buffer
			s, err := checkpoint.Open(ctx, dir, checkpoint.Options{Logger: quietLogger(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			for id := int64(1); id <= 2; id++ {
				if err := s.Save(ctx, state(id)); err != nil {
					t.Fatal(err)
				}
			}
			tt.damage(t, dir)
			st, err := s.Load(ctx)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Load: %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if st.Counters.EventsRead != tt.wantID {
				t.Fatalf("loaded state %d, want %d", st.Counters.EventsRead, tt.wantID)
			}
			if !strings.Contains(logs.String(), tt.wantWarn) {
				t.Fatalf("log %q, want it to mention %q", logs.String(), tt.wantWarn)
			}
			// The next Save repairs the store.
			if err := s.Save(ctx, state(3)); err != nil {
				t.Fatal(err)
			}
			if got := mustLoad(t, s).Counters.EventsRead; got != 3 {
				t.Fatalf("after repair loaded %d", got)
			}
		})
	}
}

func TestLocalSaveLeavesNoTemp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := checkpoint.Open(ctx, dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 3; id++ {
		if err := s.Save(ctx, state(id)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, ","), "state.json,state.json.prev"; got != want {
		t.Fatalf("dir holds %s, want %s", got, want)
	}
	prev, err := os.ReadFile(filepath.Join(dir, checkpoint.PrevFile))
	if err != nil {
		t.Fatal(err)
	}
	st, err := checkpoint.Unmarshal(prev)
	if err != nil || st.Counters.EventsRead != 2 {
		t.Fatalf("prev = %+v, %v; want state 2", st, err)
	}
}

func TestBucketCorruptNewest(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	defer b.Close()
	var logs bytes.Buffer
	s, err := checkpoint.Open(ctx, "mem://", checkpoint.Options{Bucket: b, Name: "shard-1-of-1", Logger: quietLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 2; id++ {
		if err := s.Save(ctx, state(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WriteAll(ctx, "shard-1-of-1/state.json", []byte(`{"version":1,"objects":{"x":nu`), nil); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, s).Counters.EventsRead; got != 1 {
		t.Fatalf("loaded state %d, want the previous one (1)", got)
	}
	if !strings.Contains(logs.String(), "unreadable") {
		t.Fatalf("no warning logged: %q", logs.String())
	}
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{name: "OK", in: `{"version":1,"objects":{"a":{"watermark":3,"settled":[[5,7],[9,10]]}}}`},
		{name: "ErrVersionFuture", in: `{"version":2,"objects":{}}`, wantErr: checkpoint.ErrVersion},
		{name: "ErrCorruptNoVersion", in: `{"objects":{}}`, wantErr: checkpoint.ErrCorrupt},
		{name: "ErrCorruptSyntax", in: `{"version":1,`, wantErr: checkpoint.ErrCorrupt},
		{name: "ErrCorruptRangeAtWatermark", in: `{"version":1,"objects":{"a":{"watermark":3,"settled":[[3,7]]}}}`, wantErr: checkpoint.ErrCorrupt},
		{name: "ErrCorruptRangesAdjacent", in: `{"version":1,"objects":{"a":{"watermark":3,"settled":[[5,7],[7,9]]}}}`, wantErr: checkpoint.ErrCorrupt},
		{name: "ErrCorruptResumeAboveWatermark", in: `{"version":1,"objects":{"a":{"watermark":3,"resume_record":4}}}`, wantErr: checkpoint.ErrCorrupt},
		{name: "ErrCorruptNullObject", in: `{"version":1,"objects":{"a":null}}`, wantErr: checkpoint.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkpoint.Unmarshal([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Unmarshal: %v, want %v", err, tt.wantErr)
			}
			if errors.Is(err, checkpoint.ErrVersion) && !strings.Contains(err.Error(), "upgrade") {
				t.Fatalf("version error %q does not tell what to do", err)
			}
		})
	}
}

// TestStateJSONNames pins the on-disk field names.
func TestStateJSONNames(t *testing.T) {
	data, err := checkpoint.Marshal(state(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"version":1`, `"job_fingerprint"`, `"objects"`, `"watermark":1`, `"resume_record":1`,
		`"resume_offset":100`, `"settled":[[3,6]]`, `"counters"`, `"events_read":1`, `"dead_letter_size":10`, `"run_count":1`} {
		if !bytes.Contains(data, []byte(name)) {
			t.Errorf("encoded state lacks %s: %s", name, data)
		}
	}
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func truncateHalf(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
}
