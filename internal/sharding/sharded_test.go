package sharding_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backfillhq/backfill"
	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/job"
)

// The sharded job: COUNT workers over objectsPerPartition × partitions
// daily objects (dt=2024-03-0N/) plus one small trailing partition, the
// tail. Every object holds hotPerObject events of each hot device (each
// with its own user) and regularPerObject events of regular devices that
// appear in every object.
const (
	shardCount          = 3
	partitions          = 5
	objectsPerPartition = 3
	hotPerObject        = 45
	regularPerObject    = 60
	regularDevices      = 40
	tailEvents          = 40
	// eps is the job's --eps and the emulator's per-id limit on /batch,
	// events/s over 30 s (600 events per window). A device belongs to one
	// shard, which paces it at the full --eps: a hot device's 675 events
	// need two windows whatever the shard count.
	eps   = 20
	limit = eps
	// killedShard is the shard whose worker is SIGKILLed and restarted; it
	// runs the Kubernetes way (--shard-count and JOB_COMPLETION_INDEX). It
	// owns no hot device: a replacement's pacing starts afresh, so the
	// killed worker's last window of an id could count twice (see the
	// README), and a cold device cannot reach the limit even so.
	killedShard = 1
	lockTTL     = 4 * time.Second
	// exitRejected is backfill's exit code for a job completed with
	// rejected records (cmd/backfill ExitRejected).
	exitRejected = 3
)

// hotDevices are two hot devices, owned by the shards other than
// killedShard (found by name, see makeInput); hotDevice is shard 0's.
var hotDevices []string

func hotDevice() string { return hotDevices[0] }

// input is the generated job input.
type input struct {
	objects  map[string][]byte // key -> JSON lines
	keys     []string          // sorted
	valid    map[string]int    // src -> owning shard, for valid events
	order    map[string]int    // src -> index in source order
	device   map[string]string // src -> device
	invalid  map[string]int    // src -> owning shard, for records that must be dead-lettered
	rejected [shardCount]int   // invalid records per shard
	tail     map[string]bool   // src of the tail partition's events
}

// objectURL is the canonical URL of key in the events bucket (the reader
// drops the query parameters): the Object of its records' positions.
func objectURL(key string) string { return "s3://events/" + key }

func makeInput(t *testing.T) *input {
	t.Helper()
	in := &input{objects: map[string][]byte{}, valid: map[string]int{}, order: map[string]int{}, device: map[string]string{},
		invalid: map[string]int{}, tail: map[string]bool{}}
	if hotDevices == nil {
		for n := 0; len(hotDevices) < 2; n++ {
			d := fmt.Sprintf("device-hot-%04d", n)
			if sh := backfill.ShardOf(d, shardCount); sh == len(hotDevices)*2 { // shards 0 and 2
				hotDevices = append(hotDevices, d)
			}
		}
	}
	for p := range partitions {
		for o := range objectsPerPartition {
			in.keys = append(in.keys, fmt.Sprintf("export/dt=2024-03-%02d/part-%d.jsonl", p+1, o))
		}
	}
	tailKey := fmt.Sprintf("export/dt=2024-03-%02d/part-0.jsonl", partitions+1)
	in.keys = append(in.keys, tailKey)
	ms := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i, key := range in.keys {
		var b bytes.Buffer
		line := 0
		src := func() string { return fmt.Sprintf("%s#%d", key, line) }
		invalid := func() {
			fmt.Fprintf(&b, `{"device_id":"device-bad-0001","time":%d,"event_properties":{"src":%q}}`+"\n", ms, src())
			sh := backfill.ShardOfPosition(backfill.Position{Object: objectURL(key), Record: int64(line)}, shardCount)
			in.invalid[src()] = sh
			in.rejected[sh]++
			line++
		}
		// The first object starts with invalid records until one is the
		// killed shard's, so that its checkpoint accounts for dead-letter
		// bytes before the kill; one object has one mid-file.
		if i == 0 {
			for in.rejected[killedShard] == 0 {
				invalid()
			}
		}
		add := func(dev, user string) {
			ms += 250
			ev := map[string]any{
				"event_type":       "page_view",
				"device_id":        dev,
				"user_id":          user,
				"time":             ms,
				"event_properties": map[string]any{"src": src()},
			}
			if line%3 != 0 { // the others get an insert_id derived from their position
				ev["insert_id"] = "ins-" + src()
			}
			data, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(append(data, '\n'))
			in.valid[src()] = backfill.ShardOf(dev, shardCount)
			in.order[src()] = len(in.order)
			in.device[src()] = dev
			if key == tailKey {
				in.tail[src()] = true
			}
			line++
		}
		if key == tailKey {
			for n := range tailEvents {
				d := (n * 3) % regularDevices
				add(fmt.Sprintf("device-%04d", d), fmt.Sprintf("user-%04d", d))
			}
		} else {
			for n := range max(hotPerObject, regularPerObject) {
				if n == regularPerObject/2 && i == len(in.keys)-3 {
					invalid()
				}
				for h, dev := range hotDevices {
					if n < hotPerObject {
						add(dev, fmt.Sprintf("user-hot-%04d", h))
					}
				}
				if n < regularPerObject {
					d := (i*7 + n) % regularDevices
					add(fmt.Sprintf("device-%04d", d), fmt.Sprintf("user-%04d", d))
				}
			}
		}
		in.objects[key] = b.Bytes()
	}
	return in
}

// TestShardedKillRestart runs a 3-shard job as three worker processes
// against one emulator, SIGKILLs one worker mid-run and restarts it like a
// replacement pod, and runs the same data unsharded against another
// emulator meanwhile. It then checks delivery (exactly once, per-device
// order across all workers), the per-id limit, that every event reached
// the same endpoint as in the unsharded run, the route plan shared by the
// shards (an object that lands after the plan was made waits), and the
// aggregated status and report.
func TestShardedKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs four backfill processes for over a 30 s throttle window; skipped under -short")
	}
	backfillBin(t) // before the clock starts
	in := makeInput(t)
	s3 := startS3(t, "events", "state", "ref")
	for key, data := range in.objects {
		s3.put(t, "events", key, data)
		s3.put(t, "ref", key, data)
	}
	// The latency and small requests stretch a worker's first window of
	// sends over a few checkpoint saves, so the kill lands mid-window.
	emuCfg := emulator.Config{BatchEPS: limit, Faults: emulator.Faults{Latency: 30 * time.Millisecond}}
	em := startEmulator(t, emuCfg)
	ref := startEmulator(t, emuCfg)
	src := s3.URL("events/export/")
	ck := s3.URL("state/job1")
	dir := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	args := func(endpoint, checkpoint, deadLetter string, flags ...string) []string {
		a := append([]string{"run"}, flags...)
		return append(a,
			"--checkpoint", checkpoint,
			"--endpoint", endpoint,
			"--eps", strconv.Itoa(eps),
			"--batch-size", "20",
			"--checkpoint-every", "100ms",
			"--lock-ttl", lockTTL.String(),
			"--lock-wait", "1m",
			"--progress", "plain",
			"--log-format", "json",
			"--dead-letter", deadLetter)
	}
	dl := func(name string) string { return filepath.Join(dir, name+".dead-letter.jsonl") }
	// The unsharded reference run: the same objects in another bucket.
	unsharded := start(ctx, t, "unsharded", childEnv(), append(args(ref.URL, s3.URL("state/ref"), filepath.Join(dir, "unsharded.jsonl")), s3.URL("ref/export/"))...)
	workers := make([]*proc, shardCount)
	startWorker := func(i int) {
		name := fmt.Sprintf("worker-%d", i)
		if i == killedShard {
			workers[i] = start(ctx, t, name, childEnv("JOB_COMPLETION_INDEX="+strconv.Itoa(i)), append(args(em.URL, ck, dl(name), "--shard-count", strconv.Itoa(shardCount)), src)...)
		} else {
			workers[i] = start(ctx, t, name, childEnv(), append(args(em.URL, ck, dl(name), "--shard", fmt.Sprintf("%d/%d", i, shardCount)), src)...)
		}
	}
	// Shard 0 starts first and records the route plan; an object lands
	// then, before the other shards start: it is not in the plan, so no
	// shard sends it (it waits for the job's next run).
	startWorker(0)
	for deadline := time.Now().Add(20 * time.Second); s3.get("state", "job1/plan-000001.json") == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("no route plan recorded within 20 s:\n%s", workers[0].output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lateKey := fmt.Sprintf("export/dt=2024-03-%02d/late.jsonl", partitions+2)
	s3.put(t, "events", lateKey, []byte(`{"event_type":"late","device_id":"device-late-0001","time":1709900000000,"event_properties":{"src":"late"}}`+"\n"))
	for i := 1; i < shardCount; i++ {
		startWorker(i)
	}
	all := append([]*proc{unsharded}, workers...)
	defer func() {
		if t.Failed() {
			for _, p := range all {
				t.Log(p.output())
			}
		}
	}()

	// Kill the worker of killedShard while one of its requests is at the
	// emulator, once its checkpoint accounts for a dead-letter line and
	// some accepted events. The emulator still ingests that request, which
	// the dead worker never learns: the replacement must send those events
	// again, and the emulator drop them by insert_id.
	killedName := checkpoint.ShardName(killedShard, shardCount)
	victim := workers[killedShard]
	inFlight := make(chan int, 1) // killed shard's events in the request at the kill
	var killedSrc atomic.Value    // one of them
	var once sync.Once
	em.del.setBefore(func(srcs []string) {
		n := 0
		for _, s := range srcs {
			if sh, ok := in.valid[s]; ok && sh == killedShard {
				n++
			}
		}
		if n == 0 {
			return
		}
		st := s3.state("state", "job1", killedName)
		if st == nil || st.DeadLetterSize == 0 || st.Counters.EventsAccepted == 0 || st.Complete {
			return
		}
		once.Do(func() {
			for _, s := range srcs {
				if in.valid[s] == killedShard {
					killedSrc.Store(s)
				}
			}
			victim.cmd.Process.Kill()
			<-victim.done
			inFlight <- n
		})
	})
	var killedWith int
	select {
	case killedWith = <-inFlight:
	case <-victim.done:
		select { // killed meanwhile: the hook is still sending
		case killedWith = <-inFlight:
		case <-time.After(5 * time.Second):
			t.Fatalf("worker %d ended (exit %d) before it could be killed", killedShard, victim.code)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("worker %d was not killed within 60 s", killedShard)
	}
	if code := victim.wait(); code != -1 {
		t.Fatalf("killed worker exit code %d, want -1 (killed)", code)
	}
	t.Logf("killed worker %d after %s with a request of %d of its events in flight",
		killedShard, victim.elapsed.Round(time.Millisecond), killedWith)
	// Did the emulator ingest the request whose client died? (Not if its
	// latency had not passed: it drops the request with the connection.)
	ingested := false
	for deadline := time.Now().Add(2 * time.Second); !ingested && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s, _ := killedSrc.Load().(string)
		ingested = em.del.counts()[s] > 0
	}

	// The replacement: same args on a fresh disk (a new dead-letter path),
	// its index from JOB_COMPLETION_INDEX, --allow-rejected as in the
	// manifest. The dead worker's lock is fresh: it must wait it out.
	restarted := start(ctx, t, "worker-1-restarted", childEnv("JOB_COMPLETION_INDEX="+strconv.Itoa(killedShard)),
		append(args(em.URL, ck, dl("worker-1-restarted"), "--shard-count", strconv.Itoa(shardCount), "--allow-rejected"), src)...)
	all = append(all, restarted)

	for i, p := range workers {
		if i == killedShard {
			continue
		}
		want := 0
		if in.rejected[i] > 0 {
			want = exitRejected
		}
		if code := p.wait(); code != want {
			t.Errorf("worker %d exit code %d, want %d", i, code, want)
		}
	}
	if code := restarted.wait(); code != 0 {
		t.Errorf("restarted worker exit code %d, want 0 (--allow-rejected)", code)
	}
	if code := unsharded.wait(); code != exitRejected {
		t.Errorf("unsharded run exit code %d, want %d", code, exitRejected)
	}
	for _, p := range all {
		t.Logf("%s ran %s", p.name, p.elapsed.Round(time.Millisecond))
	}
	// A shard paces its devices at the full --eps: the hot device's 675
	// events need two 30 s windows, as in one process.
	for _, p := range []*proc{workers[0], unsharded} {
		if out := p.stdout.String(); !strings.Contains(out, "lower bound 30s (hottest id "+hotDevice()) {
			t.Errorf("%s's summary lacks the lower bound of 30s for %s:\n%s", p.name, hotDevice(), out)
		}
	}
	for _, p := range []*proc{workers[0], workers[2], restarted} {
		line := regexp.MustCompile(`(?m)^\s*shard .*records read per record owned\)$`).FindString(p.stdout.String())
		if line == "" {
			t.Errorf("%s's summary lacks the shard's read cost", p.name)
		}
		t.Logf("%s: %s", p.name, strings.TrimSpace(line))
	}
	log := restarted.stderr.String()
	for _, want := range []string{"waiting for the checkpoint lock", "took over a stale checkpoint lock", "dead-letter file of earlier runs is not on this machine"} {
		if !strings.Contains(log, want) {
			t.Errorf("restarted worker's log lacks %q", want)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("ExactlyOnce", func(t *testing.T) {
		seen := map[string]int{}
		for _, r := range em.Events() {
			seen[srcOf(r.Event)]++
		}
		for s, n := range seen {
			if _, ok := in.valid[s]; !ok {
				t.Errorf("emulator accepted unexpected event %q", s)
			} else if n != 1 {
				t.Errorf("emulator accepted %q %d times", s, n)
			}
		}
		missing := 0
		for s := range in.valid {
			if seen[s] == 0 {
				missing++
				if missing <= 5 {
					t.Errorf("event %q never accepted", s)
				}
			}
		}
		if missing > 0 || len(seen) != len(in.valid) {
			t.Errorf("%d distinct events accepted, %d missing, want %d", len(seen), missing, len(in.valid))
		}
		resent := 0
		for s, n := range em.del.counts() {
			if n > 1 {
				resent += n - 1
				if in.valid[s] != killedShard {
					t.Errorf("event %q of shard %d delivered %d times: only the killed shard may re-send", s, in.valid[s], n)
				}
			}
		}
		st := em.Stats()
		// The replacement re-sends exactly the requests in flight (the
		// checkpoint journal holds every acknowledgement); if the emulator
		// dropped the killed one with its connection, none is a duplicate.
		if resent < killedWith && ingested {
			t.Errorf("%d events re-sent, want at least the %d of the request in flight at the kill", resent, killedWith)
		}
		if int64(resent) != st.EventsDuplicate {
			t.Errorf("emulator dropped %d duplicates, the deliveries show %d re-sends", st.EventsDuplicate, resent)
		}
		t.Logf("%d events accepted once; %d re-sent by the restarted worker (dropped by insert_id)", len(seen), resent)
	})

	t.Run("DeviceOrder", func(t *testing.T) {
		// Across all workers, no event of a device arrives before an older
		// one of the same device.
		for name, e := range map[string]*emu{"sharded": em, "unsharded": ref} {
			last := map[string]int{}
			inversions := 0
			for _, r := range e.Events() {
				s := srcOf(r.Event)
				i, ok := in.order[s]
				if !ok {
					continue
				}
				if j, ok := last[in.device[s]]; ok && j > i {
					inversions++
					if inversions <= 3 {
						t.Errorf("%s: event %q of %s arrived after a newer one", name, s, in.device[s])
					}
				}
				last[in.device[s]] = max(last[in.device[s]], i)
			}
			t.Logf("%s: %d per-device inversions", name, inversions)
		}
	})

	t.Run("Endpoints", func(t *testing.T) {
		want := map[string]backfill.Route{}
		for _, r := range ref.Events() {
			want[srcOf(r.Event)] = r.Route
		}
		var nHTTP, diff int
		for _, r := range em.Events() {
			s := srcOf(r.Event)
			if r.Route == backfill.RouteHTTP {
				nHTTP++
			}
			if w, ok := want[s]; !ok || w != r.Route {
				diff++
				if diff <= 3 {
					t.Errorf("event %q arrived on %s, on %s in the unsharded run", s, r.Route, w)
				}
			}
			if r.Route == backfill.RouteHTTP != in.tail[s] {
				t.Errorf("event %q arrived on %s; tail partition: %v", s, r.Route, in.tail[s])
			}
		}
		if nHTTP != tailEvents {
			t.Errorf("%d events through /2/httpapi, want the tail's %d", nHTTP, tailEvents)
		}
		t.Logf("%d of %d events through /2/httpapi in both runs (%.1f%%)", nHTTP, len(in.valid), 100*float64(nHTTP)/float64(len(in.valid)))
	})

	t.Run("Plan", func(t *testing.T) {
		for i := range shardCount {
			st := s3.state("state", "job1", checkpoint.ShardName(i, shardCount))
			if st == nil || st.Plan != 1 || st.Split != checkpoint.SplitDevice {
				t.Errorf("shard %d state: plan %v, split %q; want plan 1, split by device", i, st != nil && st.Plan == 1, st.Split)
			}
			if _, ok := st.Objects[objectURL(lateKey)]; ok {
				t.Errorf("shard %d read %s, which landed after the plan", i, lateKey)
			}
		}
		if got := s3.get("state", "job1/plan-000002.json"); got != nil {
			t.Errorf("a second route plan was recorded")
		}
	})

	t.Run("PerIDLimit", func(t *testing.T) {
		st := em.Stats()
		if n := st.Responses[429]; n != 0 {
			t.Errorf("emulator answered 429 %d times: the workers together went over %d events/s per id", n, limit)
		}
		if st.EventsRejected != 0 {
			t.Errorf("emulator rejected %d events (responses %v)", st.EventsRejected, st.Responses)
		}
		if got := em.MaxWindowEPS(); got > eps {
			t.Errorf("MaxWindowEPS %.1f > --eps %d", got, eps)
		}
		hot := map[string]float64{}
		for _, p := range em.Peaks() {
			if p.Kind == "device" && slices.Contains(hotDevices, p.ID) {
				hot[p.ID] = p.EPS
			}
		}
		// Each hot device is paced at the full --eps by its one shard.
		for _, d := range hotDevices {
			if hot[d] <= eps/2 || hot[d] > eps {
				t.Errorf("hot device %s peak %.1f events/s over 30 s, want in (%d, %d]", d, hot[d], eps/2, eps)
			}
		}
		t.Logf("max window %.1f events/s per id (--eps %d); hot devices %v; %d requests", em.MaxWindowEPS(), eps, hot, st.RequestsBatch)
	})

	t.Run("DeadLetter", func(t *testing.T) {
		got := map[string]bool{}
		files, _ := filepath.Glob(filepath.Join(dir, "*.dead-letter.jsonl"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				var e struct {
					Data json.RawMessage `json:"data"`
				}
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				if got[srcOf(e.Data)] {
					t.Errorf("%q dead-lettered twice", srcOf(e.Data))
				}
				got[srcOf(e.Data)] = true
			}
		}
		for s := range in.invalid {
			if !got[s] {
				t.Errorf("invalid record %q is in no dead-letter file", s)
			}
		}
		for s := range got {
			if _, ok := in.invalid[s]; !ok {
				t.Errorf("dead-lettered %q, a valid event", s)
			}
		}
	})

	t.Run("Status", func(t *testing.T) {
		code, out, errOut := run(t, childEnv(), "status", "--checkpoint", ck)
		if code != 0 {
			t.Fatalf("status exit %d\n%s%s", code, out, errOut)
		}
		for i := range shardCount {
			runs := 1
			if i == killedShard {
				runs = 2
			}
			if want := fmt.Sprintf("%s: complete; %d runs", checkpoint.ShardName(i, shardCount), runs); !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		for _, want := range []string{fmt.Sprintf("all %d shards: complete", shardCount), "route plan 1 (recorded", "tail: 1 trailing partitions (40 events)"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("Report", func(t *testing.T) {
		code, out, errOut := run(t, childEnv(), "report", "--checkpoint", ck, "--json")
		if code != 0 {
			t.Fatalf("report exit %d\n%s%s", code, out, errOut)
		}
		var rep job.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("report JSON: %v\n%s", err, out)
		}
		total := int64(len(in.valid) + len(in.invalid))
		if rep.EventsRead != total || rep.EventsAccepted+rep.EventsRejected != total {
			t.Errorf("events read %d = accepted %d + rejected %d, want %d = %d + %d",
				rep.EventsRead, rep.EventsAccepted, rep.EventsRejected, total, len(in.valid), len(in.invalid))
		}
		if rep.EventsAccepted != int64(len(in.valid)) || rep.EventsRejected != int64(len(in.invalid)) {
			t.Errorf("accepted %d, rejected %d; want %d, %d", rep.EventsAccepted, rep.EventsRejected, len(in.valid), len(in.invalid))
		}
		if want := len(in.keys); rep.ObjectsTotal != want || rep.ObjectsDone != want {
			t.Errorf("objects total %d, done %d; want %d", rep.ObjectsTotal, rep.ObjectsDone, want)
		}
		if rep.Status != job.StatusRejected || rep.Runs != 2 || rep.Responses429 != 0 {
			t.Errorf("status %q, runs %d, 429s %d; want %q, 2, 0", rep.Status, rep.Runs, rep.Responses429, job.StatusRejected)
		}
	})
}

// TestObjectSplitRefused: a sharded checkpoint written by the object split
// of earlier versions is refused with what to do.
func TestObjectSplitRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the backfill binary; skipped under -short")
	}
	in := makeInput(t)
	s3 := startS3(t, "events", "state")
	for key, data := range in.objects {
		s3.put(t, "events", key, data)
	}
	old := &checkpoint.State{Job: "x", Shard: "0/3", Objects: map[string]*checkpoint.Object{}, RunCount: 1}
	data, err := checkpoint.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	s3.put(t, "state", "old/"+checkpoint.ShardName(0, shardCount)+"/"+checkpoint.StateFile, data)
	code, out, errOut := run(t, childEnv(), "run", "--shard", "0/3", "--checkpoint", s3.URL("state/old"), "--endpoint", "http://127.0.0.1:1",
		"--dead-letter", filepath.Join(t.TempDir(), "dl.jsonl"), "--progress", "none", s3.URL("events/export/"))
	if code != 2 {
		t.Fatalf("exit code %d, want 2 (usage)\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"split shards by object", "new --checkpoint"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error lacks %q:\n%s", want, errOut)
		}
	}
}

// TestLockLostStops starts a second worker on a running worker's shard with
// --force (a takeover): the first must notice at its next heartbeat and
// stop at once with exit code 1, instead of sending alongside the second.
func TestLockLostStops(t *testing.T) {
	if testing.Short() {
		t.Skip("runs backfill processes; skipped under -short")
	}
	backfillBin(t)
	in := makeInput(t)
	s3 := startS3(t, "events", "state")
	for key, data := range in.objects {
		s3.put(t, "events", key, data)
	}
	// The taker-over starts with fresh pacing in the window of the first
	// worker's last sends: up to 2 × --eps for a device (see the README).
	em := startEmulator(t, emulator.Config{BatchEPS: 2 * limit})
	ck := s3.URL("state/job2")
	dir := t.TempDir()
	// A hang guard, not a timing assertion: the second worker waits out a
	// 30 s pacing window before it can finish, which took over a minute
	// under the full suite's load on 2 cores.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := func(name string, extra ...string) []string {
		a := []string{"run", "--shard", fmt.Sprintf("0/%d", shardCount), "--checkpoint", ck, "--endpoint", em.URL,
			"--eps", strconv.Itoa(eps), "--route", "batch", "--checkpoint-every", "100ms", "--progress", "none",
			"--dead-letter", filepath.Join(dir, name+".jsonl")}
		return append(append(a, extra...), s3.URL("events/export/"))
	}
	first := start(ctx, t, "first", childEnv(), args("first")...)
	defer func() {
		if t.Failed() {
			t.Log(first.output())
		}
	}()
	// Wait until the first has saved progress: its hot device then waits
	// for the next 30 s window, so it is still running.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st := s3.state("state", "job2", checkpoint.ShardName(0, shardCount)); st != nil && st.Counters.EventsAccepted > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first worker saved no progress within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	second := start(ctx, t, "second", childEnv(), args("second", "--force")...)
	select {
	case <-first.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the first worker kept running for 15 s after its lock was taken over")
	}
	if first.code != 1 {
		t.Errorf("first worker exit code %d, want 1", first.code)
	}
	if errOut := first.stderr.String(); !strings.Contains(errOut, "checkpoint lock lost") {
		t.Errorf("first worker's error lacks %q:\n%s", "checkpoint lock lost", lastLines(errOut, 10))
	}
	if code := second.wait(); code != 0 {
		t.Errorf("second worker exit code %d, want 0:\n%s", code, second.output())
	}
}
