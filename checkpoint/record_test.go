package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/backfillhq/backfill/checkpoint"
	"gocloud.dev/blob/memblob"
)

// TestCreateOnce: of runs racing to create one record, exactly one wins and
// every run reads the winner's record; locally and in a bucket.
func TestCreateOnce(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		open func(t *testing.T) *checkpoint.Store
	}{
		{"Local", func(t *testing.T) *checkpoint.Store {
			dir := t.TempDir()
			s, err := checkpoint.Open(ctx, dir, checkpoint.Options{Name: "shard-1-of-3"})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"Bucket", func(t *testing.T) *checkpoint.Store {
			s, err := checkpoint.Open(ctx, "mem://", checkpoint.Options{Name: "shard-1-of-3", Bucket: memblob.OpenBucket(nil)})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.open(t)
			defer s.Close()
			if _, err := s.ReadRecord(ctx, "plan-000001.json"); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("ReadRecord before Create: %v, want ErrNotExist", err)
			}
			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() { errs[i] = s.Create(ctx, "plan-000001.json", []byte(fmt.Sprintf(`{"by":%d}`, i))) })
			}
			wg.Wait()
			won := -1
			for i, err := range errs {
				switch {
				case err == nil && won >= 0:
					t.Fatalf("runs %d and %d both created the record", won, i)
				case err == nil:
					won = i
				case !errors.Is(err, checkpoint.ErrExist):
					t.Fatalf("run %d: %v", i, err)
				}
			}
			if won < 0 {
				t.Fatal("no run created the record")
			}
			got, err := s.ReadRecord(ctx, "plan-000001.json")
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`{"by":%d}`, won); string(got) != want {
				t.Errorf("record %s, want %s", got, want)
			}
			keys, err := s.Records(ctx, "plan-")
			if err != nil || len(keys) != 1 || keys[0] != "plan-000001.json" {
				t.Errorf("Records = %v, %v", keys, err)
			}
			if states, err := s.LoadAll(ctx); err != nil || len(states) != 0 {
				t.Errorf("LoadAll = %v, %v: a record is not a state", states, err)
			}
			if err := s.Create(ctx, "../x", nil); !errors.Is(err, checkpoint.ErrBadName) {
				t.Errorf("Create(../x) = %v, want ErrBadName", err)
			}
		})
	}
}
