package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/internal/azfake"
	"github.com/backfillhq/backfill/internal/storagesrv"
)

// Pointing azblob:// URLs at a local endpoint: gocloud's azureblob opener
// (v0.48) builds the service URL http://DOMAIN/ACCOUNT (path style) when
// the local-emulator mode is on, from the environment
// (AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_DOMAIN, AZURE_STORAGE_PROTOCOL=http,
// AZURE_STORAGE_IS_LOCAL_EMULATOR=true) or from the URL's query parameters
// (domain, protocol, localemu, storage_account), which override the
// environment. The domain must be a loopback address with protocol=http.
// With AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY set it signs requests
// with that shared key, which azfake accepts without checking.
//
// The default opener reads the environment once per process, at the first
// azblob:// open (checkpoint and reader share it): every test of this
// package that opens azblob:// URLs must set the same credentials, and a
// test relying on AZURE_STORAGE_DOMAIN must use the process-wide server of
// sharedAzure so the cached domain stays right under -count=N.

// azAccount and the key isolateAzure sets are Azurite's development
// account, so that the same credentials serve azfake (which checks none)
// and Azurite (which checks the shared-key signature).
const (
	azAccount   = storagesrv.AzureAccount
	azContainer = "events"
)

var (
	azOnce   sync.Once
	azShared *azfake.Server
	azRuns   atomic.Int64 // numbers the runs' prefixes on the shared server
)

// sharedAzure returns the process-wide fake Azure server (never closed: the
// opener's cached AZURE_STORAGE_DOMAIN points at it for the process's life).
func sharedAzure() *azfake.Server {
	azOnce.Do(func() { azShared = azfake.New(nil) })
	return azShared
}

// isolateAzure sets a fake shared-key credential (never the developer's),
// so the opener neither signs with real keys nor falls back to the default
// credential chain (managed identity over the network).
func isolateAzure(t *testing.T) {
	t.Setenv("AZURE_STORAGE_ACCOUNT", azAccount)
	t.Setenv("AZURE_STORAGE_KEY", storagesrv.AzureKey)
	for _, k := range []string{"AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGEBLOB_CONNECTIONSTRING", "AZURE_STORAGE_IS_CDN"} {
		t.Setenv(k, "")
	}
}

// azObjects are the generated blobs of one test: name → (format, seed, n).
var azObjects = []struct {
	name   string
	format string
	seed   int64
	n      int
}{
	{"2024/01/events.jsonl", "jsonl", 31, 1500},
	{"2024/02/events.jsonl.gz", "jsonl.gz", 32, 1500},
	{"2024/03/events.parquet", "parquet", 33, 1500},
}

// putAzureObjects writes the generated blobs under prefix (each test its
// own, the server being shared), plus blobs the listing must skip, and
// returns the expected events.
// azStore is where TestE2EAzure's blobs live: azfake, or Azurite run as a
// process.
type azStore interface {
	Put(container, name string, data []byte)
	// RangeGets counts range requests; ok is false when the server cannot
	// tell.
	RangeGets() (n int64, ok bool)
}

type azfakeStore struct{ *azfake.Server }

func (s azfakeStore) RangeGets() (int64, bool) { return s.Stats().RangeGets, true }

type azuriteStore struct {
	t *testing.T
	*storagesrv.Server
}

func (s azuriteStore) Put(container, name string, data []byte) {
	if err := s.Upload(context.Background(), container, name, data); err != nil {
		s.t.Fatal(err)
	}
}

func (s azuriteStore) RangeGets() (int64, bool) { return 0, false }

func putAzureObjects(t *testing.T, s azStore, prefix string) []wantEvent {
	t.Helper()
	var want []wantEvent
	for _, o := range azObjects {
		var buf bytes.Buffer
		opts := fixturegen.Options{N: o.n, Seed: o.seed, RowGroupRows: 400}
		if err := fixturegen.Write(&buf, o.format, opts); err != nil {
			t.Fatal(err)
		}
		s.Put(azContainer, prefix+o.name, buf.Bytes())
		object := "azblob://" + azContainer + "/" + prefix + o.name
		g := fixturegen.NewGenerator(opts)
		for i := int64(0); ; i++ {
			ev, ok := g.Next()
			if !ok {
				break
			}
			w := wantEvent{insertID: ev.InsertID, object: object, record: i}
			if err := json.Unmarshal(ev.JSON(), &w.event); err != nil {
				t.Fatal(err)
			}
			want = append(want, w)
		}
	}
	// Skipped by name, and outside the source prefix.
	s.Put(azContainer, prefix+"2024/_SUCCESS", nil)
	s.Put(azContainer, prefix+"2024/.hidden.jsonl", []byte("{}\n"))
	s.Put(azContainer, prefix+"2023/old.jsonl", []byte(`{"event_type":"old","device_id":"device-old-1"}`+"\n"))
	return want
}

// TestE2EAzure sends JSON lines, gzipped JSON lines and Parquet (read by
// range requests) from an azblob:// prefix served by azfake, configured once
// by the environment alone and once by URL query parameters. Every event
// arrives exactly once; a re-run sends nothing.
func TestE2EAzure(t *testing.T) {
	tests := []struct {
		name string
		// server returns the store and the query to append to the source.
		server func(t *testing.T) (azStore, string)
	}{
		// The environment's domain is read once per process by gocloud's
		// opener, so this case needs a server that lives as long as the
		// test binary: the in-process azfake.
		{"Env", func(t *testing.T) (azStore, string) {
			s := sharedAzure()
			t.Setenv("AZURE_STORAGE_DOMAIN", strings.TrimPrefix(s.URL, "http://"))
			t.Setenv("AZURE_STORAGE_PROTOCOL", "http")
			t.Setenv("AZURE_STORAGE_IS_LOCAL_EMULATOR", "true")
			return azfakeStore{s}, ""
		}},
		// Query parameters: Azurite as a process (make storage-servers),
		// or azfake when Azurite is not installed.
		{"QueryParams", func(t *testing.T) (azStore, string) {
			var st azStore
			var domain string
			if az, err := storagesrv.Start(storagesrv.Azure, t.TempDir()); err == nil {
				t.Cleanup(az.Stop)
				if err := az.CreateBucket(context.Background(), azContainer); err != nil {
					t.Fatal(err)
				}
				st, domain = azuriteStore{t, az}, az.Addr
			} else {
				if !errors.Is(err, storagesrv.ErrNotInstalled) {
					t.Fatal(err)
				}
				t.Logf("Azurite not installed (%v): using azfake", err)
				s := azfake.New(nil)
				t.Cleanup(s.Close)
				st, domain = azfakeStore{s}, strings.TrimPrefix(s.URL, "http://")
			}
			q := url.Values{"domain": {domain}, "protocol": {"http"}, "localemu": {"true"}}
			return st, "?" + q.Encode()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateAzure(t)
			s, query := tt.server(t)
			// Each run its own prefix: the Env server is shared by every
			// run of the test binary.
			prefix := fmt.Sprintf("run%d-%s/", azRuns.Add(1), tt.name)
			want := putAzureObjects(t, s, prefix)
			source := "azblob://" + azContainer + "/" + prefix + "2024/" + query

			e := startEmulator(t, emulator.Config{})
			w := newWorkDir(t)
			args := append(w.runArgs(e, "--api-key", e2eKey), source)
			before, countsRanges := s.RangeGets()
			res := runMain(t, args...)
			if res.code != ExitOK {
				t.Fatalf("exit code %d\n%s", res.code, res)
			}
			checkDelivered(t, e, want)
			if st := e.Stats(); st.EventsDuplicate != 0 {
				t.Errorf("emulator absorbed %d duplicates, want 0", st.EventsDuplicate)
			}
			rep := readReport(t, w.report)
			rep.checkInvariant(t)
			if rep.EventsRead != int64(len(want)) || rep.EventsAccepted != int64(len(want)) || rep.EventsRejected != 0 {
				t.Errorf("report read %d accepted %d rejected %d, want %d read and accepted", rep.EventsRead, rep.EventsAccepted, rep.EventsRejected, len(want))
			}
			if len(rep.Objects) != len(azObjects) {
				t.Errorf("report lists %d objects, want %d: %+v", len(rep.Objects), len(azObjects), rep.Objects)
			}
			for i, o := range rep.Objects {
				if wantURL := "azblob://" + azContainer + "/" + prefix + azObjects[i].name; o.URL != wantURL || o.Status != "done" {
					t.Errorf("report object %d: %s %s, want %s done", i, o.URL, o.Status, wantURL)
				}
			}
			if after, _ := s.RangeGets(); countsRanges && after == before {
				t.Error("the Parquet object was not read by range requests")
			}

			// The job is complete: a re-run lists the prefix again and
			// sends nothing (only the planner reads the small trailing
			// objects again, to count their events for routing).
			res = runMain(t, args...)
			if res.code != ExitOK {
				t.Fatalf("re-run: exit code %d\n%s", res.code, res)
			}
			rep = readReport(t, w.report)
			if rep.Run.EventsRead != 0 || rep.ObjectsSkipped != len(azObjects) {
				t.Errorf("re-run read %d events and skipped %d objects, want 0 and %d", rep.Run.EventsRead, rep.ObjectsSkipped, len(azObjects))
			}
			if st := e.Stats(); st.EventsAccepted != int64(len(want)) || st.EventsDuplicate != 0 {
				t.Errorf("after the re-run the emulator holds %d events (%d duplicates), want %d", st.EventsAccepted, st.EventsDuplicate, len(want))
			}
		})
	}
}
