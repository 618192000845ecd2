package sharding_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backfillhq/backfill/checkpoint"
	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/job"
)

// The sharded job: COUNT workers over objectsPerShard*COUNT objects. Every
// object holds hotPerObject events of one hot device (and its user) and
// regularPerObject events of devices that also appear in other objects.
const (
	shardCount       = 3
	objectsPerShard  = 5
	hotPerObject     = 70
	regularPerObject = 60
	regularDevices   = 40
	hotDevice        = "device-hot-0001"
	hotUser          = "user-hot-0001"
	// limit is the emulator's per-id threshold on /batch, events/s over
	// 30 s (900 events per window).
	limit = 30
	// eps is the job's --eps: each shard paces every id at eps/COUNT = 7,
	// 210 events per window. Three shards together stay at 630; a
	// restarted shard's pacing starts afresh, so right after a restart the
	// killed worker's sends of the last window count once more: 840, still
	// within 900 (see the README: --eps ≤ limit × COUNT/(COUNT+1)). Without
	// the 1/COUNT split, three shards would send 3 × 350 hot events in the
	// first window and get 429s.
	eps = 21
	// killedShard is the shard whose worker is SIGKILLed and restarted; it
	// runs the Kubernetes way (--shard-count and JOB_COMPLETION_INDEX).
	killedShard = 1
	lockTTL     = 4 * time.Second
	// exitRejected is backfill's exit code for a job completed with
	// rejected records (cmd/backfill ExitRejected).
	exitRejected = 3
)

// input is the generated job input.
type input struct {
	objects  map[string][]byte // key -> JSON lines
	shardOf  map[string]int    // key -> shard
	valid    map[string]int    // src -> shard, for valid events
	invalid  map[string]int    // src -> shard, for records that must be dead-lettered
	rejected [shardCount]int   // invalid records per shard
}

// objectURL is the canonical URL of key in the events bucket, the one
// job.InShard hashes (the reader drops the query parameters).
func objectURL(key string) string { return "s3://events/" + key }

func makeInput(t *testing.T) *input {
	t.Helper()
	in := &input{objects: map[string][]byte{}, shardOf: map[string]int{}, valid: map[string]int{}, invalid: map[string]int{}}
	// Pick object names until every shard has objectsPerShard of them, so
	// that the shards take about equally long.
	var keys []string
	var per [shardCount]int
	for n := 0; len(keys) < shardCount*objectsPerShard; n++ {
		if n > 10000 {
			t.Fatal("cannot balance the objects over the shards")
		}
		key := fmt.Sprintf("export/2024/part-%04d.jsonl", n)
		for s := range shardCount {
			if job.InShard(objectURL(key), s, shardCount) && per[s] < objectsPerShard {
				per[s]++
				keys = append(keys, key)
				in.shardOf[key] = s
			}
		}
	}
	sort.Strings(keys)
	ms := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	firstOfShard := map[int]bool{}
	for i, key := range keys {
		shard := in.shardOf[key]
		var b bytes.Buffer
		line := 0
		src := func() string { return fmt.Sprintf("%s#%d", key, line) }
		// The first object of the killed shard starts with an invalid
		// record, so that its checkpoint accounts for dead-letter bytes
		// before the kill; one object of another shard has one mid-file.
		if (shard == killedShard && !firstOfShard[shard]) || (shard == 2 && i == len(keys)-1) {
			fmt.Fprintf(&b, `{"device_id":"device-bad-0001","time":%d,"event_properties":{"src":%q}}`+"\n", ms, src())
			in.invalid[src()] = shard
			in.rejected[shard]++
			line++
		}
		firstOfShard[shard] = true
		hot, regular := 0, 0
		for hot < hotPerObject || regular < regularPerObject {
			ms += 250
			dev, user := hotDevice, hotUser
			if hot >= hotPerObject || (line%2 == 1 && regular < regularPerObject) {
				d := (i*7 + regular) % regularDevices
				dev, user = fmt.Sprintf("device-%04d", d), fmt.Sprintf("user-%04d", d)
				regular++
			} else {
				hot++
			}
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
			in.valid[src()] = shard
			line++
		}
		in.objects[key] = b.Bytes()
	}
	return in
}

// TestShardedKillRestart runs a 3-shard job as three worker processes
// against one emulator, SIGKILLs one worker mid-run and restarts it like a
// replacement pod, then checks delivery, the per-id limit, and the
// aggregated status and report.
func TestShardedKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three backfill processes for over a 30 s throttle window; skipped under -short")
	}
	backfillBin(t) // before the clock starts
	in := makeInput(t)
	s3 := startS3(t, "events", "state")
	for key, data := range in.objects {
		s3.put(t, "events", key, data)
	}
	// The latency and small requests stretch a worker's first window of
	// sends over a few checkpoint saves, so the kill lands mid-window.
	em := startEmulator(t, emulator.Config{BatchEPS: limit, Faults: emulator.Faults{Latency: 30 * time.Millisecond}})
	src := s3.URL("events/export/")
	ck := s3.URL("state/job1")
	dir := t.TempDir()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	args := func(deadLetter string, flags ...string) []string {
		a := append([]string{"run"}, flags...)
		return append(a,
			"--checkpoint", ck,
			"--endpoint", em.URL,
			"--eps", strconv.Itoa(eps),
			"--route", "batch",
			"--batch-size", "20",
			"--checkpoint-every", "100ms",
			"--lock-ttl", lockTTL.String(),
			"--lock-wait", "1m",
			"--progress", "plain",
			"--log-format", "json",
			"--dead-letter", deadLetter,
			src)
	}
	dl := func(name string) string { return filepath.Join(dir, name+".dead-letter.jsonl") }
	workers := make([]*proc, shardCount)
	for i := range shardCount {
		name := fmt.Sprintf("worker-%d", i)
		if i == killedShard {
			workers[i] = start(ctx, t, name, childEnv("JOB_COMPLETION_INDEX="+strconv.Itoa(i)), args(dl(name), "--shard-count", strconv.Itoa(shardCount))...)
		} else {
			workers[i] = start(ctx, t, name, childEnv(), args(dl(name), "--shard", fmt.Sprintf("%d/%d", i, shardCount))...)
		}
	}
	all := append([]*proc(nil), workers...)
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
		args(dl("worker-1-restarted"), "--shard-count", strconv.Itoa(shardCount), "--allow-rejected")...)
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
	for _, p := range all {
		t.Logf("%s ran %s", p.name, p.elapsed.Round(time.Millisecond))
	}
	// Each shard paces the hot device at eps/COUNT = 7/s: its 350 events
	// need two 30 s windows, and the run's summary says so.
	if out := workers[0].stdout.String(); !strings.Contains(out, "lower bound 30s (hottest id "+hotDevice) {
		t.Errorf("worker 0's summary lacks the shard's lower bound of 30s:\n%s", out)
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

	t.Run("PerIDLimit", func(t *testing.T) {
		st := em.Stats()
		if n := st.Responses[429]; n != 0 {
			t.Errorf("emulator answered 429 %d times: the workers together went over %d events/s per id", n, limit)
		}
		if st.EventsRejected != 0 {
			t.Errorf("emulator rejected %d events (responses %v)", st.EventsRejected, st.Responses)
		}
		if got := em.MaxWindowEPS(); got > limit {
			t.Errorf("MaxWindowEPS %.1f > %d", got, limit)
		}
		var hot float64
		for _, p := range em.Peaks() {
			if p.ID == hotDevice && p.Kind == "device" {
				hot = p.EPS
			}
		}
		// Two shards' budgets are 420 events (14/s) per window: a higher
		// peak shows all three workers loaded the same id at once, so the
		// test did exercise the combined limit.
		if hot <= float64(2*(eps/shardCount)) || hot > limit {
			t.Errorf("hot device peak %.1f events/s over 30 s, want in (%d, %d]", hot, 2*(eps/shardCount), limit)
		}
		t.Logf("hot device peak %.1f events/s over 30 s (limit %d); %d requests", hot, limit, st.RequestsBatch)
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
		if want := fmt.Sprintf("all %d shards: complete", shardCount); !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
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
		if want := shardCount * objectsPerShard; rep.ObjectsTotal != want || rep.ObjectsDone != want {
			t.Errorf("objects total %d, done %d; want %d", rep.ObjectsTotal, rep.ObjectsDone, want)
		}
		if rep.Status != job.StatusRejected || rep.Runs != 2 || rep.Responses429 != 0 {
			t.Errorf("status %q, runs %d, 429s %d; want %q, 2, 0", rep.Status, rep.Runs, rep.Responses429, job.StatusRejected)
		}
	})
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
	em := startEmulator(t, emulator.Config{BatchEPS: limit})
	ck := s3.URL("state/job2")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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
