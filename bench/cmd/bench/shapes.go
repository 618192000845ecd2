package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/backfillhq/backfill/fixtures/fixturegen"
	"github.com/klauspost/compress/gzip"
)

// The input layouts users have (issue 17): buckets of many part files,
// mixed plain and gzip objects, records without insert_id (backfill
// derives one), small and large events. Each shape is a directory of JSON
// lines objects (or one file) generated from the throughput generator, and
// is measured against the one-file shape of the same run.

// shapesVersion names the shape generation; bump it when it changes.
const shapesVersion = "v2"

// shape is one input layout.
type shape struct {
	Name    string `json:"name"`
	Objects int    `json:"objects"`
	Events  int    `json:"events"` // in all
	Gzip    string `json:"gzip"`   // "", "all" or "mixed" (every other object)
	Kind    string `json:"kind"`   // "", "no-insert-id", "small" (about 200 B), "large" (about 2 KB)
	SDK     bool   `json:"sdk"`
	// Base names the shape this one's time is compared with (same events
	// in one object); empty: the run's one-file shape.
	Base string `json:"base,omitempty"`
	// Args are extra flags of `backfill run`: a variant of a layout (same
	// data), compared with that layout's SDK run and left out of the goals.
	Args    []string `json:"args,omitempty"`
	Variant string   `json:"variant,omitempty"` // the layout it is a variant of
}

// shapesFor returns the shapes of a run; quick scales them down.
func shapesFor(quick, sdkAll bool) []shape {
	n, objs, mixed, tiny := 1_000_000, 1000, 100, 10000
	if quick {
		n, objs, mixed, tiny = 200_000, 200, 100, 2000
	}
	sh := []shape{
		{Name: "one file", Objects: 1, Events: n, SDK: true},
		{Name: "8 objects", Objects: 8, Events: n, SDK: true},
		{Name: "8 objects, --memory-limit off", Objects: 8, Events: n, Args: []string{"--memory-limit", "off"}, Variant: "8 objects"},
		{Name: fmt.Sprintf("%d objects of 1,000", objs), Objects: objs, Events: objs * 1000},
		{Name: fmt.Sprintf("%d objects, plain and gzip", mixed), Objects: mixed, Events: n, Gzip: "mixed"},
		{Name: "no insert_id (derived)", Objects: 1, Events: n, Kind: "no-insert-id"},
		{Name: "200-byte events", Objects: 1, Events: n, Kind: "small"},
		{Name: "2 KB events", Objects: 1, Events: n / 4, Kind: "large"},
		{Name: "tiny objects: one object", Objects: 1, Events: tiny * 10, Kind: "small"},
		{Name: fmt.Sprintf("tiny objects: %d of 10", tiny), Objects: tiny, Events: tiny * 10, Kind: "small",
			Base: "tiny objects: one object"},
	}
	if sdkAll {
		for i := range sh {
			sh[i].SDK = sh[i].Variant == ""
		}
	}
	return sh
}

func (s shape) dir(root string) string {
	name := fmt.Sprintf("%s-o%d-n%d-%s-%s", shapesVersion, s.Objects, s.Events, cmpOr(s.Gzip, "plain"), cmpOr(s.Kind, "std"))
	return filepath.Join(root, "data", "shapes", name)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ensureShape writes the shape's objects unless they are cached; the
// directory is renamed into place when complete.
func ensureShape(root string, s shape, devices int) (string, error) {
	dir := s.dir(root)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	exe, err := self()
	if err != nil {
		return "", err
	}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "generating %s ...", filepath.Base(dir))
	if _, _, err := runChild(0, nil, exe, "genshape", dir, strconv.Itoa(s.Objects), strconv.Itoa(s.Events),
		cmpOr(s.Gzip, "-"), cmpOr(s.Kind, "-"), strconv.Itoa(devices)); err != nil {
		fmt.Fprintln(os.Stderr)
		return "", err
	}
	fmt.Fprintf(os.Stderr, " %.0fs\n", time.Since(start).Seconds())
	return dir, nil
}

// writeShape is the genshape child: it writes objects part-NNNNN.jsonl[.gz]
// holding consecutive events of one generator stream.
func writeShape(dir string, objects, events int, gz, kind string, devices int) error {
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	names := make([]string, objects)
	for o := range names {
		names[o] = fmt.Sprintf("part-%05d.jsonl", o)
		if gz == "all" || gz == "mixed" && o%2 == 1 {
			names[o] += ".gz"
		}
	}
	if err := fixturegen.WriteObjects(tmp, names, shapeOptions(events, devices, kind)); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// shapeOptions are the generator options of a shape's events of kind.
func shapeOptions(events, devices int, kind string) fixturegen.Options {
	o := dataset{N: events, Devices: devices, Seed: 1}.options()
	switch kind {
	case "small": // about 200 bytes
		o.EventBytes = smallEventBytes
	case "large": // about 2 KB
		o.EventBytes = largeEventBytes
	case "no-insert-id":
		o.NoInsertID = 1
	}
	return o
}

// linesOf opens path for the SDK baseline: a file, or every file of a
// directory in name order, gzip-decompressed when named .gz.
func linesOf(path string) (io.Reader, func(), error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	files := []string{path}
	if fi.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, nil, err
		}
		files = files[:0]
		for _, e := range ents {
			files = append(files, filepath.Join(path, e.Name()))
		}
		slices.Sort(files)
	}
	pr, pw := io.Pipe()
	go func() {
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			var r io.Reader = f
			if strings.HasSuffix(name, ".gz") {
				zr, err := gzip.NewReader(f)
				if err != nil {
					f.Close()
					pw.CloseWithError(err)
					return
				}
				r = zr
			}
			_, err = io.Copy(pw, r)
			f.Close()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	return pr, func() { pr.Close() }, nil
}

// shapeResult is one shape's measurements.
type shapeResult struct {
	Shape    shape      `json:"shape"`
	Bytes    int64      `json:"bytes"`
	Backfill runResult  `json:"backfill"`
	SDK      *runResult `json:"sdk,omitempty"`
}

type shapesResults struct {
	Machine   machine       `json:"machine"`
	Quick     bool          `json:"quick"`
	Shapes    []shapeResult `json:"shapes"`
	Seconds   float64       `json:"seconds"`
	DriverRSS int64         `json:"driver_peak_rss_bytes"`
	LoadEnd   string        `json:"loadavg_at_end"`
	Load      []string      `json:"loadavg_per_shape"`
}

type shapes struct {
	common
	quick, sdk, sdkAll bool
	devices            int
	only               string
}

func (s *shapes) run() error {
	start := time.Now()
	if _, err := os.Stat(s.bin); err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	list := shapesFor(s.quick, s.sdkAll)
	dirs := make([]string, len(list))
	for i, sh := range list {
		d, err := ensureShape(s.dir, sh, s.devices)
		if err != nil {
			return err
		}
		dirs[i] = d
	}
	res := shapesResults{Machine: describeMachine(), Quick: s.quick}
	emu := []string{"--batch-eps", "0", "--http-eps", "0", "--daily-quota", "0"}
	for i, sh := range list {
		if s.only != "" && !strings.Contains(sh.Name, s.only) {
			continue
		}
		path := dirs[i]
		if sh.Objects == 1 {
			ents, err := os.ReadDir(path)
			if err != nil || len(ents) != 1 {
				return fmt.Errorf("shape %s: %v", sh.Name, err)
			}
			path = filepath.Join(path, ents[0].Name())
		}
		r := shapeResult{Shape: sh, Bytes: dirBytes(dirs[i])}
		bf, err := runBackfill(s.bin, s.dir, path, sh.Args, emu, 0)
		if err != nil {
			return fmt.Errorf("shape %s: %w", sh.Name, err)
		}
		r.Backfill = bf
		logf("shape %-28s backfill %8.0f ev/s  cpu %.2f s/M  rss %s  delivered %d of %d  emulator cpu %.1fs",
			sh.Name, bf.eps(), bf.cpuPerM(), mb(bf.Usage.MaxRSS), bf.Events, sh.Events, bf.Emulator.CPU)
		if bf.Events != int64(sh.Events) {
			logf("WARNING: backfill delivered %d of %d events (status %s)", bf.Events, sh.Events, bf.Status)
		}
		if s.sdk && sh.SDK {
			sdk, err := runSDK(s.bin, path, emu, 0, false)
			if err != nil {
				return fmt.Errorf("shape %s sdk: %w", sh.Name, err)
			}
			r.SDK = &sdk
			logf("shape %-28s sdk      %8.0f delivered ev/s  sent %d delivered %d", sh.Name, sdk.eps(), sdk.Sent, sdk.Events)
		}
		res.Shapes = append(res.Shapes, r)
		res.Load = append(res.Load, describeMachine().LoadAvg)
	}
	res.Seconds = time.Since(start).Seconds()
	res.DriverRSS, res.LoadEnd = selfPeakRSS(), describeMachine().LoadAvg
	md := res.markdown()
	return s.publish("shapes", res, md)
}

func dirBytes(path string) int64 {
	var n int64
	filepath.Walk(path, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func (r shapesResults) markdown() string {
	var b strings.Builder
	mode := "full"
	if r.Quick {
		mode = "quick (BENCH=quick)"
	}
	fmt.Fprintf(&b, "Measured by `make bench` (`bench shapes`, %s) on %s; load average at the end %s. Total %.0f s. "+
		"Peak RSS is the child's ru_maxrss (the driver's own peak, %s, is a lower bound for it).\n\n",
		mode, r.Machine, r.LoadEnd, r.Seconds, mb(r.DriverRSS))
	b.WriteString("JSON lines objects of the throughput generator (50,000 devices), against a fresh emulator per program with throttling off. " +
		"*CPU vs one file* is CPU seconds per event over the one-file shape's in the same run; *SDK* columns are the naive SDK program on the same objects (read in name order).\n\n")
	b.WriteString("| shape | objects | events | MB | wall s | events/s | CPU s / M events | CPU vs one file | CPU s / GB | peak RSS | emulator CPU share | SDK delivered events/s | backfill ÷ SDK | SDK CPU s / M | load avg (1 min) after |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	byName := map[string]shapeResult{}
	for _, s := range r.Shapes {
		byName[s.Shape.Name] = s
	}
	base, hasBase := byName["one file"]
	for i, s := range r.Shapes {
		bf := s.Backfill
		vs := "–"
		if hasBase && base.Backfill.cpuPerM() > 0 {
			vs = fmt.Sprintf("%.2f×", bf.cpuPerM()/base.Backfill.cpuPerM())
		}
		sdkEPS, ratio, sdkCPU := "–", "–", "–"
		sdk := s.SDK
		if v, ok := byName[s.Shape.Variant]; ok && sdk == nil {
			sdk = v.SDK // a variant is compared with its layout's SDK run
		}
		if sdk != nil && sdk.Usage.Wall > 0 {
			sdkEPS = fmt.Sprintf("%.1fk", sdk.eps()/1e3)
			ratio = fmt.Sprintf("%.2f×", bf.eps()/sdk.eps())
			sdkCPU = fmt.Sprintf("%.2f", sdk.cpuPerM())
		}
		share := bf.Emulator.CPU / (bf.Emulator.CPU + bf.Usage.CPU) * 100
		load := ""
		if i < len(r.Load) {
			load = strings.Fields(r.Load[i] + " ")[0]
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.0f | %.1f | %.1fk | %.2f | %s | %.1f | %s | %.0f%% | %s | %s | %s | %s |\n",
			s.Shape.Name, s.Shape.Objects, bf.Events, float64(s.Bytes)/1e6, bf.Usage.Wall, bf.eps()/1e3, bf.cpuPerM(), vs,
			bf.Usage.CPU/float64(s.Bytes)*1e9, mb(bf.Usage.MaxRSS), share, sdkEPS, ratio, sdkCPU, load)
	}
	b.WriteString("\n**Goals of issue 17**, computed from the rows above:\n\n")
	if hasBase {
		var miss []string
		var all []string
		ref := map[string]bool{"one file": true}
		for _, s := range r.Shapes {
			ref[s.Shape.Base] = true // compared with its own base below
		}
		for _, s := range r.Shapes {
			if ref[s.Shape.Name] || s.Shape.Base != "" || s.Shape.Variant != "" {
				continue
			}
			x := s.Backfill.cpuPerM() / base.Backfill.cpuPerM()
			all = append(all, fmt.Sprintf("%s %.2f×", s.Shape.Name, x))
			if x > 1.3 {
				miss = append(miss, s.Shape.Name)
			}
		}
		fmt.Fprintf(&b, "- CPU per event within 1.3× of one file (the tiny-object shapes are compared with each other below): %s: %s\n", strings.Join(all, ", "), verdictOf(miss))
	}
	if s8, ok := byName["8 objects"]; ok && s8.SDK != nil && s8.SDK.eps() > 0 {
		x := s8.Backfill.eps() / s8.SDK.eps()
		fmt.Fprintf(&b, "- ≥ 5× the SDK's delivered events/s on 8 objects: %.2f× (%.0fk vs %.0fk ev/s, %d of %d delivered vs %d): %s\n",
			x, s8.Backfill.eps()/1e3, s8.SDK.eps()/1e3, s8.Backfill.Events, s8.Shape.Events, s8.SDK.Events, verdict(x >= 5))
		for _, v := range r.Shapes {
			if v.Shape.Variant == "8 objects" {
				fmt.Fprintf(&b, "  - the same with `%s` (not the default): %.2f× (%.0fk ev/s, peak RSS %s)\n",
					strings.Join(v.Shape.Args, " "), v.Backfill.eps()/s8.SDK.eps(), v.Backfill.eps()/1e3, mb(v.Backfill.Usage.MaxRSS))
			}
		}
	}
	var peak int64
	for _, s := range r.Shapes {
		if s.Shape.Variant == "" { // defaults only: a variant may trade memory away
			peak = max(peak, s.Backfill.Usage.MaxRSS)
		}
	}
	fmt.Fprintf(&b, "- peak RSS ≤ 150 MB in every shape: highest %s: %s\n", mb(peak), verdict(peak <= 150e6))
	for _, s := range r.Shapes {
		if s.Shape.Base == "" {
			continue
		}
		if bs, ok := byName[s.Shape.Base]; ok && bs.Backfill.Usage.Wall > 0 {
			w := s.Backfill.Usage.Wall / bs.Backfill.Usage.Wall
			c := s.Backfill.Usage.CPU / bs.Backfill.Usage.CPU
			per := (s.Backfill.Usage.CPU - bs.Backfill.Usage.CPU) / float64(s.Shape.Objects-1) * 1e6
			fmt.Fprintf(&b, "- %s within 1.5× the time of the same events in one object: wall %.2f×, CPU %.2f× (%.0f µs of CPU per extra object): %s\n",
				s.Shape.Name, w, c, per, verdict(w <= 1.5))
		}
	}
	return b.String()
}

// verdictOf is verdict naming the shapes that missed.
func verdictOf(miss []string) string {
	if len(miss) == 0 {
		return verdict(true)
	}
	return verdict(false) + " (" + strings.Join(miss, ", ") + ")"
}
