package testutil

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/backfillhq/backfill/emulator"
)

// StartEmulator serves an emulator with cfg behind a real HTTP server (its
// logs discarded unless cfg.Logger is set) until the test ends, and returns
// it with its base URL. wrap, when not nil, wraps its handler (to observe
// requests).
func StartEmulator(t testing.TB, cfg emulator.Config, wrap func(http.Handler) http.Handler) (*emulator.Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := emulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = s
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return s, ts.URL
}
