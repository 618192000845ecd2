package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine describes where the numbers come from.
type machine struct {
	CPUs    int    `json:"nproc"`
	Model   string `json:"cpu_model"`
	MemGB   string `json:"memory"`
	Go      string `json:"go"`
	Date    string `json:"date"`
	LoadAvg string `json:"loadavg_at_start"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	m.Model = procField("/proc/cpuinfo", "model name")
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		var n float64
		fmt.Sscanf(kb, "%f", &n)
		m.MemGB = fmt.Sprintf("%.1f GiB", n/(1<<20))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

func procField(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (m machine) String() string {
	return fmt.Sprintf("%d CPUs (%s), %s RAM, %s, %s, load average at start %s", m.CPUs, m.Model, m.MemGB, m.Go, m.Date, m.LoadAvg)
}

// publish saves a run's results v and tables md, prints the tables and
// rewrites them in the markdown file.
func (c common) publish(name string, v any, md string) error {
	if err := saveResults(c.dir, name, v, md); err != nil {
		return err
	}
	fmt.Println(md)
	return updateMarkdown(c.md, name, md)
}

// saveResults writes the raw results and the markdown under dir/results.
func saveResults(dir, name string, v any, md string) error {
	rd := filepath.Join(dir, "results")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rd, name+".json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(rd, name+".md"), []byte(md), 0o644)
}

// updateMarkdown replaces the text between the markers
// "<!-- bench:NAME -->" and "<!-- /bench:NAME -->" of file with md,
// appending a marked section when there is none.
func updateMarkdown(file, name, md string) error {
	if file == "" {
		return nil
	}
	open, end := "<!-- bench:"+name+" -->", "<!-- /bench:"+name+" -->"
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	block := open + "\n" + md + "\n" + end
	i, j := strings.Index(s, open), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(end):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + block + "\n"
	}
	return os.WriteFile(file, []byte(s), 0o644)
}

func find(rs []runResult, size int, format string) (runResult, bool) {
	for _, r := range rs {
		if r.Size == size && r.Format == format {
			return r, true
		}
	}
	return runResult{}, false
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func kfmt(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func (r throughputResults) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("Measured by `make bench` (`bench throughput`) on %s; load average at the end %s. Total %.0f s. "+
		"Peak RSS is the child's ru_maxrss (the driver's own peak, %s, is a lower bound for it).\n\n", r.Machine, r.LoadEnd, r.Seconds, mb(r.DriverRSS))
	w("**End to end** (bin/backfill → emulator with throttling off, events not kept). Ratios are against the bare read-and-parse floor on the same file (`vs floor`).\n\n")
	w("| events | format | file MB | wall s | events/s | vs floor | MB/s | CPU s / M events | vs floor | peak RSS | requests | delivered | 429s | emulator CPU s (share of CPU) |\n")
	w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Backfill {
		fl, _ := find(r.Floor, x.Size, x.Format)
		share := x.Emulator.CPU / (x.Emulator.CPU + x.Usage.CPU)
		w("| %s | %s | %.0f | %.1f | %s | %s | %.1f | %.2f | %s | %s | %d | %d%s | %d | %.1f (%.0f%%) |\n",
			kfmt(float64(x.Size)), x.Format, float64(x.FileBytes)/1e6, x.Usage.Wall, kfmt(x.eps()), ratio(x.eps(), fl.eps()),
			float64(x.FileBytes)/1e6/x.Usage.Wall, x.cpuPerM(), ratio(x.cpuPerM(), fl.cpuPerM()), mb(x.Usage.MaxRSS),
			x.Requests, x.Events, lost(x.Events, int64(x.Size)), x.Resp429, x.Emulator.CPU, share*100)
	}
	w("\n**Floor**: `bench floor` reads the same file and parses every record with the library the product uses (bufio + fastjson for JSON lines, klauspost gzip, encoding/csv, arrow-go pqarrow record batches of 1,024 rows), nothing else.\n\n")
	w("| events | format | wall s | events/s | MB/s | CPU s / M events | peak RSS |\n|---:|---|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Floor {
		w("| %s | %s | %.1f | %s | %.0f | %.2f | %s |\n", kfmt(float64(x.Size)), x.Format, x.Usage.Wall, kfmt(x.eps()),
			float64(x.FileBytes)/1e6/x.Usage.Wall, x.cpuPerM(), mb(x.Usage.MaxRSS))
	}
	if len(r.SDK) > 0 {
		w("\n**SDK baseline**: a naive backfill with github.com/amplitude/analytics-go v1.3.1 (encoding/json per line, `Track` each event, `UseBatch`, `FlushQueueSize` 2000, other settings default, `Shutdown` at the end) on the JSON lines file, against its own fresh emulator. *Delivered* is counted by the emulator; the SDK drops events silently when its 20,000-event queue is full.\n\n")
		w("| events | sent (Track) | delivered | lost | wall s | delivered events/s | backfill events/s | backfill ÷ SDK | SDK CPU s / M delivered | backfill CPU s / M | SDK peak RSS | requests |\n")
		w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range r.SDK {
			bf, _ := find(r.Backfill, s.Size, "jsonl")
			w("| %s | %d | %d | %.1f%% | %.1f | %s | %s | %s | %.2f | %.2f | %s | %d |\n", kfmt(float64(s.Size)), s.Sent, s.Events,
				100*float64(s.Sent-s.Events)/float64(max(1, s.Sent)), s.Usage.Wall, kfmt(s.eps()), kfmt(bf.eps()), ratio(bf.eps(), s.eps()),
				s.cpuPerM(), bf.cpuPerM(), mb(s.Usage.MaxRSS), s.Requests)
		}
	}
	w("\n**Goals of issue 8**, computed from the rows above:\n\n")
	for _, g := range r.goals() {
		w("- %s\n", g)
	}
	return b.String()
}

func lost(got, want int64) string {
	if got == want {
		return ""
	}
	return fmt.Sprintf(" (of %d)", want)
}

func (r throughputResults) goals() []string {
	var out []string
	sizes := map[int]bool{}
	var order []int
	for _, x := range r.Backfill {
		if !sizes[x.Size] {
			sizes[x.Size] = true
			order = append(order, x.Size)
		}
	}
	for _, s := range r.SDK {
		bf, ok := find(r.Backfill, s.Size, "jsonl")
		if !ok {
			continue
		}
		k := bf.eps() / s.eps()
		out = append(out, fmt.Sprintf("JSON lines ≥ 5× the SDK's delivered events/s with zero loss, %s events: %.1f× (%s vs %s ev/s), %d of %d delivered: %s",
			kfmt(float64(s.Size)), k, kfmt(bf.eps()), kfmt(s.eps()), bf.Events, bf.Size, verdict(k >= 5 && bf.Events == int64(bf.Size))))
	}
	var worstCPU []string
	cpuOK := true
	rssOK := true
	var maxRSS int64
	for _, x := range r.Backfill {
		fl, _ := find(r.Floor, x.Size, x.Format)
		c := x.cpuPerM() / fl.cpuPerM()
		worstCPU = append(worstCPU, fmt.Sprintf("%s %s %.1f×", kfmt(float64(x.Size)), x.Format, c))
		if c > 3 {
			cpuOK = false
		}
		if x.Usage.MaxRSS > 150e6 {
			rssOK = false
		}
		maxRSS = max(maxRSS, x.Usage.MaxRSS)
	}
	out = append(out, fmt.Sprintf("CPU per event ≤ 3× the floor: %s: %s", strings.Join(worstCPU, ", "), verdict(cpuOK)))
	out = append(out, fmt.Sprintf("peak RSS ≤ 150 MB for every format: highest %s: %s", mb(maxRSS), verdict(rssOK)))
	if len(order) >= 2 {
		lo, hi := order[0], order[len(order)-1]
		var parts []string
		ok := true
		for _, f := range formats {
			a, ok1 := find(r.Backfill, lo, f)
			b, ok2 := find(r.Backfill, hi, f)
			if !ok1 || !ok2 {
				continue
			}
			d := float64(b.Usage.MaxRSS)/float64(a.Usage.MaxRSS) - 1
			parts = append(parts, fmt.Sprintf("%s %+.0f%%", f, d*100))
			if d > 0.10 {
				ok = false
			}
		}
		out = append(out, fmt.Sprintf("peak RSS within 10%% between %s and %s: %s: %s", kfmt(float64(lo)), kfmt(float64(hi)), strings.Join(parts, ", "), verdict(ok)))
	}
	for _, n := range order {
		plain, ok1 := find(r.Backfill, n, "jsonl")
		gz, ok2 := find(r.Backfill, n, "jsonl.gz")
		if ok1 && ok2 {
			tr, cr := plain.eps()/gz.eps(), gz.cpuPerM()/plain.cpuPerM()
			out = append(out, fmt.Sprintf("gzipped within 1.5× of plain, %s: wall time %.2f×, CPU per event %.2f×: %s", kfmt(float64(n)), tr, cr, verdict(tr <= 1.5)))
		}
		pq, ok3 := find(r.Backfill, n, "parquet")
		if ok1 && ok3 {
			out = append(out, fmt.Sprintf("Parquet at least as fast as JSON lines per event, %s: %s vs %s ev/s, CPU per event %.2f×: %s",
				kfmt(float64(n)), kfmt(pq.eps()), kfmt(plain.eps()), pq.cpuPerM()/plain.cpuPerM(), verdict(pq.eps() >= plain.eps()*0.97)))
		}
	}
	var emu []string
	for _, x := range r.Backfill {
		emu = append(emu, fmt.Sprintf("%s %s %.2f", kfmt(float64(x.Size)), x.Format, x.Emulator.CPU/x.Usage.Wall))
	}
	out = append(out, "emulator cores busy (emulator CPU s ÷ wall s; 1.00 would be one core saturated): "+strings.Join(emu, ", "))
	var ceil []string
	for _, x := range r.Backfill {
		per := (x.Usage.CPU + x.Emulator.CPU) / float64(x.Events)
		ceil = append(ceil, fmt.Sprintf("%s %s %s ev/s (%.0f%% of it reached)", kfmt(float64(x.Size)), x.Format,
			kfmt(float64(r.Machine.CPUs)/per), 100*x.eps()*per/float64(r.Machine.CPUs)))
	}
	out = append(out, fmt.Sprintf("CPU-bound ceiling with backfill and the emulator sharing the %d CPUs (nproc ÷ their CPU s per event): %s", r.Machine.CPUs, strings.Join(ceil, ", ")))
	return out
}

// selfPeakRSS returns this process's peak RSS (VmHWM), the least ru_maxrss
// any child can report (see ensure).
func selfPeakRSS() int64 {
	v := procField("/proc/self/status", "VmHWM")
	var kb int64
	fmt.Sscanf(v, "%d", &kb)
	return kb * 1024
}
