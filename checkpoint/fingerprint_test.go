package checkpoint_test

import (
	"errors"
	"testing"

	"github.com/backfillhq/backfill/checkpoint"
)

func TestFingerprint(t *testing.T) {
	a := checkpoint.Fingerprint("s3://src/", "eps=300")
	if len(a) != 16 {
		t.Fatalf("len=%d, want 16", len(a))
	}
	if b := checkpoint.Fingerprint("s3://src/", "eps=300"); a != b {
		t.Fatalf("not deterministic: %s vs %s", a, b)
	}
	for _, other := range [][]string{{"s3://src/", "eps=500"}, {"s3://src/eps=300"}, {"s3://src/e", "ps=300"}, {}} {
		if checkpoint.Fingerprint(other...) == a {
			t.Errorf("Fingerprint(%q) collides with %s", other, a)
		}
	}
}

func TestCheckJob(t *testing.T) {
	saved := &checkpoint.State{Job: "f1", JobDesc: map[string]string{"--eps": "300", "source": "s3://a", "--old": "x"}}
	tests := []struct {
		name    string
		job     string
		desc    map[string]string
		wantErr error
		wantMsg string
	}{
		{name: "OK", job: "f1"},
		{name: "ErrMismatch", job: "f2", desc: map[string]string{"--eps": "500", "source": "s3://a", "--new": "y"}, wantErr: checkpoint.ErrMismatch,
			wantMsg: "checkpoint belongs to a different job: --eps changed: 300 → 500; --new added: y; --old removed (was x); use --force to resume anyway"},
		{name: "ErrMismatchNoDesc", job: "f2", desc: map[string]string{"--eps": "300", "source": "s3://a", "--old": "x"}, wantErr: checkpoint.ErrMismatch,
			wantMsg: "checkpoint belongs to a different job: job fingerprint changed: f1 → f2; use --force to resume anyway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkpoint.CheckJob(saved, tt.job, tt.desc)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("CheckJob: %v, want %v", err, tt.wantErr)
			}
			if err != nil && err.Error() != tt.wantMsg {
				t.Fatalf("message\n%s\nwant\n%s", err, tt.wantMsg)
			}
		})
	}
}
