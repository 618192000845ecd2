package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/backfillhq/backfill/job"
)

// skew measures issue 6: a Zipf-skewed dataset against an emulator that
// enforces a scaled-down per-id limit, compared with the least time that
// limit allows for the hottest id.
type skew struct {
	common
	devices int
	top     int
	zipf    float64
	eps     int
	sdkCap  time.Duration
	sdk     bool
}

type skewResults struct {
	Machine    machine    `json:"machine"`
	Events     int        `json:"events"`
	Devices    int        `json:"devices"`
	Hottest    int        `json:"hottest_events"`
	Zipf       float64    `json:"zipf"`
	EPS        int        `json:"eps"`
	LowerBound float64    `json:"lower_bound_s"`
	Backfill   runResult  `json:"backfill"`
	SDK        *runResult `json:"sdk,omitempty"`
	SDKPatient *runResult `json:"sdk_patient,omitempty"` // Flush until every event is reported, then Shutdown
	SDKCap     float64    `json:"sdk_cap_s"`
}

func (s *skew) run() error {
	d := dataset{Devices: s.devices, Seed: 2, ZipfS: s.zipf, Top: s.top}
	path := filepath.Join(s.dir, "data", fmt.Sprintf("skew-%s-d%d-t%d-z%s.jsonl", genVersion, s.devices, s.top, strconv.FormatFloat(s.zipf, 'f', -1, 64)))
	if err := ensure(path, d); err != nil {
		return err
	}
	events := fixturegen.NewGenerator(d.options()).Len()
	res := skewResults{Machine: describeMachine(), Events: events, Devices: s.devices, Hottest: s.top, Zipf: s.zipf, EPS: s.eps, SDKCap: s.sdkCap.Seconds()}
	lb := job.LowerBound(int64(s.top), s.eps)
	res.LowerBound = lb.Seconds()
	logf("skew: %d events over %d devices, hottest %d (%.0f%%), eps %d: lower bound %s", events, s.devices, s.top, 100*float64(s.top)/float64(events), s.eps, lb)

	epsArg := strconv.Itoa(s.eps)
	emuArgs := []string{"--batch-eps", epsArg, "--daily-quota", "0"}
	bf, err := runBackfill(s.bin, s.dir, path, []string{"--eps", epsArg}, emuArgs, 10*lb+2*time.Minute)
	if err != nil {
		return err
	}
	bf.Size, bf.Format = events, "jsonl"
	res.Backfill = bf
	logf("backfill: %.1fs (%.3f× the lower bound), 429s %d, delivered %d of %d, rss %s", bf.Usage.Wall, bf.Usage.Wall/res.LowerBound, bf.Resp429, bf.Events, events, mb(bf.Usage.MaxRSS))
	if s.sdk {
		for _, patient := range []bool{false, true} {
			sdk, err := runSDK(s.bin, path, emuArgs, s.sdkCap, patient)
			if err != nil {
				return err
			}
			sdk.Size, sdk.Format = events, "jsonl"
			if patient {
				res.SDKPatient = &sdk
			} else {
				res.SDK = &sdk
			}
			logf("sdk (patient %v): %.1fs, finished %v, 429s %d, sent %d, settled %d, delivered %d", patient, sdk.Usage.Wall, sdk.Finished, sdk.Resp429, sdk.Sent, sdk.Settled, sdk.Events)
		}
	}
	md := res.markdown()
	return s.publish("skew", res, md)
}

func (r skewResults) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("Measured by `make bench-skew` (`bench skew`) on %s.\n\n", r.Machine)
	w("Dataset: %d events (JSON lines) over %d devices, Zipf exponent %g: the hottest device holds %d events (%.0f%%). "+
		"Emulator: `--batch-eps %d --daily-quota 0`; backfill: `--eps %d` (defaults otherwise). "+
		"Lower bound for the hottest id: (⌈%d / (%d·30)⌉ − 1) · 30 s = **%.0f s** (job.LowerBound).\n\n",
		r.Events, r.Devices, r.Zipf, r.Hottest, 100*float64(r.Hottest)/float64(r.Events), r.EPS, r.EPS, r.Hottest, r.EPS, r.LowerBound)
	w("| program | wall s | ÷ lower bound | 429 responses | delivered | requests | CPU s | peak RSS | finished |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	x := r.Backfill
	w("| backfill | %.1f | %.3f | %d | %d of %d | %d | %.2f | %s | %v |\n", x.Usage.Wall, x.Usage.Wall/r.LowerBound, x.Resp429, x.Events, r.Events, x.Requests, x.Usage.CPU, mb(x.Usage.MaxRSS), x.Finished)
	for i, s := range []*runResult{r.SDK, r.SDKPatient} {
		if s == nil {
			continue
		}
		name := "SDK, Shutdown after the last Track"
		if i == 1 {
			name = "SDK, Flush until every event is reported, then Shutdown"
		}
		fin := "yes"
		switch {
		case !s.Finished || i == 1 && s.Usage.Wall >= r.SDKCap:
			fin = fmt.Sprintf("no: stopped at the %.0f s cap", r.SDKCap)
		case s.Events < int64(r.Events):
			fin = fmt.Sprintf("Shutdown returned; last event reported back at %.1f s; %d events never delivered", s.Extra, int64(r.Events)-s.Events)
		}
		w("| %s | %.1f | %.3f | %d | %d of %d | %d | %.2f | %s | %s |\n", name, s.Usage.Wall, s.Usage.Wall/r.LowerBound, s.Resp429, s.Events, r.Events, s.Requests, s.Usage.CPU, mb(s.Usage.MaxRSS), fin)
	}
	w("\nGoals of issue 6: wall ÷ lower bound ≤ 1.10: %.3f: %s; zero 429 responses: %d: %s; nothing lost: %d of %d: %s.\n",
		x.Usage.Wall/r.LowerBound, verdict(x.Usage.Wall/r.LowerBound <= 1.10), x.Resp429, verdict(x.Resp429 == 0),
		x.Events, r.Events, verdict(x.Events == int64(r.Events)))
	return b.String()
}
