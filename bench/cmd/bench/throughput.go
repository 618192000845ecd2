package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// genVersion names the dataset generation; bump it when the generator
// changes so that cached files are regenerated.
const genVersion = "v2"

type throughput struct {
	common
	sizes    []int
	formats  []string
	sdkSizes []int
	devices  int
}

func (t *throughput) dataset(n int) dataset {
	return dataset{N: n, Devices: t.devices, Seed: 1}
}

func (t *throughput) path(n int, format string) string {
	return filepath.Join(t.dir, "data", fmt.Sprintf("events-%s-d%d-%d.%s", genVersion, t.devices, n, format))
}

func (t *throughput) generate() error {
	for _, n := range t.sizes {
		fs := t.formats
		if slices.Contains(t.sdkSizes, n) && !slices.Contains(fs, "jsonl") {
			fs = append([]string{"jsonl"}, fs...)
		}
		for _, f := range fs {
			if err := ensure(t.path(n, f), t.dataset(n)); err != nil {
				return err
			}
		}
	}
	return nil
}

// runResult is one measured program on one file.
type runResult struct {
	Size      int     `json:"size"`
	Format    string  `json:"format"`
	FileBytes int64   `json:"file_bytes"`
	Usage     usage   `json:"usage"`
	Events    int64   `json:"events"` // parsed (floor), accepted (backfill), delivered (SDK)
	Sent      int64   `json:"sent,omitempty"`
	Requests  int64   `json:"requests,omitempty"`
	Resp429   int64   `json:"responses_429"`
	Dup       int64   `json:"duplicates,omitempty"`
	Emulator  usage   `json:"emulator"`
	Finished  bool    `json:"finished"`
	Settled   int64   `json:"settled,omitempty"` // SDK: events reported back through ExecuteCallback
	Status    string  `json:"status,omitempty"`
	Extra     float64 `json:"last_settled_s,omitempty"` // SDK: when the last event was reported back
}

func (r runResult) eps() float64 { return float64(r.Events) / r.Usage.Wall }
func (r runResult) cpuPerM() float64 {
	if r.Events == 0 {
		return 0
	}
	return r.Usage.CPU / float64(r.Events) * 1e6
}

type throughputResults struct {
	Machine  machine     `json:"machine"`
	Backfill []runResult `json:"backfill"`
	Floor    []runResult `json:"floor"`
	SDK      []runResult `json:"sdk"`
	Seconds  float64     `json:"seconds"`
	// DriverRSS is the driver's own peak RSS, the least peak RSS a child
	// can report; LoadEnd the load average at the end.
	DriverRSS int64  `json:"driver_peak_rss_bytes"`
	LoadEnd   string `json:"loadavg_at_end"`
}

func (t *throughput) run() error {
	start := time.Now()
	if _, err := os.Stat(t.bin); err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	if err := t.generate(); err != nil {
		return err
	}
	res := throughputResults{Machine: describeMachine()}
	for _, n := range t.sizes {
		for _, f := range t.formats {
			path := t.path(n, f)
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			fl, err := runFloor(path)
			if err != nil {
				return err
			}
			fl.Size, fl.Format, fl.FileBytes = n, f, fi.Size()
			res.Floor = append(res.Floor, fl)
			logf("floor     %9d %-8s %8.0f ev/s  cpu %.2f s/M  rss %s", n, f, fl.eps(), fl.cpuPerM(), mb(fl.Usage.MaxRSS))

			bf, err := runBackfill(t.bin, t.dir, path, nil, []string{"--batch-eps", "0", "--http-eps", "0", "--daily-quota", "0"}, 0)
			if err != nil {
				return err
			}
			bf.Size, bf.Format, bf.FileBytes = n, f, fi.Size()
			res.Backfill = append(res.Backfill, bf)
			logf("backfill  %9d %-8s %8.0f ev/s  cpu %.2f s/M  rss %s  accepted %d  requests %d  emulator cpu %.1fs",
				n, f, bf.eps(), bf.cpuPerM(), mb(bf.Usage.MaxRSS), bf.Events, bf.Requests, bf.Emulator.CPU)
			if bf.Events != int64(n) {
				logf("WARNING: backfill delivered %d of %d events (status %s)", bf.Events, n, bf.Status)
			}
		}
		if slices.Contains(t.sdkSizes, n) {
			path := t.path(n, "jsonl")
			sdk, err := runSDK(t.bin, path, []string{"--batch-eps", "0", "--http-eps", "0", "--daily-quota", "0"}, 0, false)
			if err != nil {
				return err
			}
			sdk.Size, sdk.Format = n, "jsonl"
			res.SDK = append(res.SDK, sdk)
			logf("sdk       %9d %-8s sent %d delivered %d in %.1fs (%.0f delivered ev/s)", n, "jsonl", sdk.Sent, sdk.Events, sdk.Usage.Wall, sdk.eps())
		}
	}
	res.Seconds = time.Since(start).Seconds()
	res.DriverRSS, res.LoadEnd = selfPeakRSS(), describeMachine().LoadAvg
	md := res.markdown()
	return t.publish("throughput", res, md)
}

// runFloor measures the bare read-and-parse loop on path.
func runFloor(path string) (runResult, error) {
	exe, err := self()
	if err != nil {
		return runResult{}, err
	}
	out, u, err := runChild(0, nil, exe, "floor", path)
	if err != nil {
		return runResult{}, err
	}
	var v struct{ Records int64 }
	if err := json.Unmarshal(out, &v); err != nil {
		return runResult{}, fmt.Errorf("floor output %q: %w", out, err)
	}
	return runResult{Usage: u, Events: v.Records, Finished: true}, nil
}

// backfillReport is the part of report.json the benchmark reads.
type backfillReport struct {
	Status          string `json:"status"`
	EventsRead      int64  `json:"events_read"`
	EventsAccepted  int64  `json:"events_accepted"`
	EventsRejected  int64  `json:"events_rejected"`
	RequestsBatch   int64  `json:"requests_batch"`
	RequestsHTTPAPI int64  `json:"requests_httpapi"`
	Responses429    int64  `json:"responses_429"`
	BytesSent       int64  `json:"bytes_sent"`
}

// runBackfill runs `bin run` on path against a fresh emulator started with
// emuArgs, with a fresh checkpoint directory.
func runBackfill(bin, dir, path string, runArgs, emuArgs []string, timeout time.Duration) (runResult, error) {
	ck, err := os.MkdirTemp(dir, "run-")
	if err != nil {
		return runResult{}, err
	}
	defer os.RemoveAll(ck)
	emu, err := startEmulator(bin, emuArgs...)
	if err != nil {
		return runResult{}, err
	}
	args := []string{"run", "--endpoint", emu.url, "--checkpoint", ck, "--progress", "none", "--quiet"}
	if strings.HasSuffix(path, ".csv") {
		args = append(args, "--csv-types", csvTypes)
	}
	args = append(args, runArgs...)
	args = append(args, path)
	_, u, runErr := runChild(timeout, []string{"AMPLITUDE_API_KEY=" + benchAPIKey}, bin, args...)
	st, serr := emu.stats()
	eu, eerr := emu.stop()
	if err := cmp.Or(runErr, serr, eerr); err != nil {
		return runResult{}, err
	}
	var rep backfillReport
	data, err := os.ReadFile(filepath.Join(ck, "report.json"))
	if err != nil {
		return runResult{}, err
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		return runResult{}, err
	}
	return runResult{
		Usage: u, Emulator: eu, Events: st.EventsAccepted, Sent: rep.EventsRead,
		Requests: rep.RequestsBatch + rep.RequestsHTTPAPI, Resp429: rep.Responses429, Dup: st.EventsDuplicate,
		Finished: rep.Status == "complete", Status: rep.Status,
	}, nil
}

// runSDK runs the SDK baseline on path against a fresh emulator.
func runSDK(bin, path string, emuArgs []string, limit time.Duration, patient bool) (runResult, error) {
	exe, err := self()
	if err != nil {
		return runResult{}, err
	}
	emu, err := startEmulator(bin, emuArgs...)
	if err != nil {
		return runResult{}, err
	}
	hard := time.Duration(0)
	if limit > 0 {
		hard = limit + time.Minute
	}
	out, u, runErr := runChild(hard, nil, exe, "sdk", path, emu.url, limit.String(), strconv.FormatBool(patient))
	st, serr := emu.stats()
	eu, eerr := emu.stop()
	if err := cmp.Or(runErr, serr, eerr); err != nil {
		return runResult{}, err
	}
	var sr sdkResult
	if err := json.Unmarshal(out, &sr); err != nil {
		return runResult{}, fmt.Errorf("sdk output %q: %w", out, err)
	}
	fi, _ := os.Stat(path)
	return runResult{
		FileBytes: fi.Size(), Usage: u, Emulator: eu, Events: st.EventsAccepted, Sent: sr.Sent,
		Requests: st.RequestsBatch + st.RequestsHTTP, Resp429: st.Responses[429], Dup: st.EventsDuplicate,
		Finished: sr.Finished, Settled: sr.Settled, Extra: sr.Last,
	}, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }
