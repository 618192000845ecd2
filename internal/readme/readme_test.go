package readme

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/backfillhq/backfill/emulator"
	"github.com/backfillhq/backfill/fixtures"
	"github.com/backfillhq/backfill/internal/azfake"
	"github.com/backfillhq/backfill/internal/location"
	"github.com/backfillhq/backfill/internal/testutil"
)

const readmePath = "../../README.md"

var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "readme-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary builds the real binary once, as bin/backfill.
func buildBinary(t *testing.T) {
	t.Helper()
	buildOnce.Do(func() {
		buildErr = testutil.BuildBackfill(filepath.Join(binDir, "backfill"))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// example is one command or URL of the README.
type example struct {
	text  string // as written
	line  int    // 1-based line in README.md
	block int    // index of its ```sh block; -1 for inline code
	url   bool   // a URL (inline), not a command
	// context is the README line the example is on (for a URL: what the
	// sentence uses it as).
	context string
}

// objectURLForms are URLs the README shows as the form of object URLs
// (in insert_id derivation), not as sources.
var objectURLForms = map[string]bool{"s3://bucket/key": true, "file:///abs/path": true}

var (
	inlineCode = regexp.MustCompile("`([^`]+)`")
	cronLine   = regexp.MustCompile(`^(?:[0-9*/,-]+ ){5}(.+)$`)
	// statusLine is a command that inspects a checkpoint.
	statusLine = regexp.MustCompile(`^backfill (?:status|report) --checkpoint (\S+)`)
)

// extract returns the examples of the README: every line of a ```sh block
// (comments and blank lines aside), and every inline code span that is a
// backfill/make command or a source URL.
func extract(t *testing.T, readme string) []example {
	t.Helper()
	var out []example
	block, inBlock, sh, cont := -1, false, false, ""
	lines := strings.Split(readme, "\n")
	for i, line := range lines {
		trim := strings.TrimSpace(line)
		if strings.HasPrefix(trim, "```") {
			if inBlock {
				inBlock = false
				continue
			}
			inBlock, sh = true, trim == "```sh"
			if sh {
				block++
			}
			continue
		}
		if inBlock {
			if !sh {
				continue
			}
			cmd := stripComment(trim)
			if cmd == "" {
				continue
			}
			if cont != "" { // the previous line ended with a backslash
				cmd, cont = cont+" "+cmd, ""
				out[len(out)-1].text = cmd
			} else {
				out = append(out, example{text: cmd, line: i + 1, block: block})
			}
			if strings.HasSuffix(cmd, "\\") {
				cont = strings.TrimSpace(strings.TrimSuffix(cmd, "\\"))
				out[len(out)-1].text = cont
			}
			continue
		}
		for _, m := range inlineCode.FindAllStringSubmatch(line, -1) {
			s := m[1]
			switch {
			case strings.HasPrefix(s, "backfill ") || strings.HasPrefix(s, "./bin/backfill ") || strings.HasPrefix(s, "make "):
				out = append(out, example{text: s, line: i + 1, block: -1, context: line})
			case regexp.MustCompile(`^(s3|gs|azblob|file)://`).MatchString(s):
				ctx := line
				if i > 0 {
					ctx = lines[i-1] + "\n" + line // the sentence may start a line earlier
				}
				out = append(out, example{text: s, line: i + 1, block: -1, url: true, context: ctx})
			}
		}
	}
	return out
}

// stripComment drops a shell comment (a '#' at the start or after a blank,
// outside quotes).
func stripComment(s string) string {
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return strings.TrimSpace(s[:i])
		}
	}
	return strings.TrimSpace(s)
}

// skipRule is an example that cannot run here, and why.
type skipRule struct {
	match  func(string) bool
	reason string
}

func prefix(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

var skipRules = []skipRule{
	{prefix("kubectl "), "needs a Kubernetes cluster; internal/sharding checks the manifests and runs their args through the binary"},
	{prefix("go install "), "needs the internet (the module at @latest); bin/backfill is built from this tree instead"},
	{prefix("docker "), "needs Docker"},
	{prefix("make "), "a Makefile target: `make test` runs this test, and .ci runs `make test`"},
	{func(s string) bool { return s == "..." }, "an ellipsis line"},
	{func(s string) bool { return strings.HasSuffix(s, "://") }, "a scheme name, not a URL"},
	{func(s string) bool {
		return strings.Contains(s, "SOURCE...") || strings.Contains(s, "DIR|URL") || strings.Contains(s, "I/N") ||
			strings.HasSuffix(s, " ...") || s == "backfill run --dry-run"
	}, "a synopsis with placeholders, not a command"},
}

// substitution rewrites a fixed address of the README to this test's
// servers; each must still occur in the README.
type substitution struct{ from, why string }

var substitutions = []substitution{
	{"http://127.0.0.1:PORT", "the emulator's printed URL"},
	{"https://minio.local:9000", "an S3-compatible endpoint: the in-process S3"},
	{"127.0.0.1:10000", "Azurite's address: the in-process Azure fake"},
	{"127.0.0.1:8080", "a fixed port other tests may hold: a free one"},
	{"file:///data/", "an absolute example path: the working directory's data/"},
	{"/tmp/rehearsal", "an absolute example path: under the working directory"},
}

// optionalSubstitutions and optionalSkipRules are for the "Local storage
// servers" lines (MinIO, fake-gcs-server, Azurite as processes): the
// in-process fakes stand in at their addresses, and internal/storagee2e
// runs the real programs. They may match nothing (on a branch without
// those lines).
var optionalSubstitutions = []substitution{
	{"http://127.0.0.1:9000", "MinIO's address: the in-process S3"},
	{"127.0.0.1:4443", "fake-gcs-server's address: the in-process GCS"},
}

var optionalSkipRules = []skipRule{{
	func(s string) bool {
		return strings.Contains(s, "minio server ") || strings.HasPrefix(s, "fake-gcs-server ") || strings.HasPrefix(s, "azurite")
	},
	"starts a real storage server: the in-process fake stands in at its address here (internal/storagee2e runs the real one)",
}}

// world is what the README assumes exists: data where its examples point,
// an Amplitude (the emulator), buckets named bucket and b, a GCS bucket and
// an Azure container.
type world struct {
	dir     string
	emuURL  string
	emu     *emulator.Server
	s3      *testutil.S3
	gcsHost string
	az      *azfake.Server
	env     []string
	bg      []*exec.Cmd     // background processes of a block (cmd &)
	bgURL   string          // the URL a background emulator printed
	ran     map[string]bool // checkpoints a run of this world used
}

func events(t *testing.T) []byte {
	b, err := fs.ReadFile(fixtures.FS, "formats/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func preset(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "presets", name, "input.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parquet(t *testing.T) []byte {
	b, err := fs.ReadFile(fixtures.FS, "formats/events.parquet")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// newWorld builds a fresh world for one example or one ```sh block.
func newWorld(t *testing.T, mentions string) *world {
	t.Helper()
	w := &world{dir: t.TempDir(), ran: map[string]bool{}}
	w.emu, w.emuURL = testutil.StartEmulator(t, emulator.Config{}, nil)
	ev := events(t)
	deadLetter := `{"backfill_dead_letter":1,"object":"file:///x/events.jsonl","record":3,"stage":"validate","reason":"missing event_type","insert_id":"bf-readme-0001","data":{"event_type":"Fixed","device_id":"device-readme-1","time":1704100000000}}` + "\n"
	for p, b := range map[string][]byte{
		"events.jsonl":                 ev,
		"events/a.jsonl":               ev,
		"exports/2024/b.jsonl.gz":      gz(t, ev),
		"a/a.jsonl":                    ev,
		"mixpanel-export/export.jsonl": preset(t, "mixpanel"),
		"data/events/2024-01.json.gz":  gz(t, ev),
		// A Mixpanel People (engage) export row, for the profiles example.
		"people/people.jsonl": []byte(`{"$distinct_id":"user-readme-0001","$properties":{"$email":"u1@example.com","plan":"team"}}` + "\n"),
	} {
		write(t, filepath.Join(w.dir, p), b)
	}
	// The dead-letter file a rejected run leaves, for the examples that
	// feed it back (elsewhere it would be a stray file in the default
	// dead-letter location).
	for _, name := range []string{"dead-letter.jsonl", "fixed-dead-letter.jsonl"} {
		if strings.Contains(mentions, "run "+name) {
			write(t, filepath.Join(w.dir, name), []byte(deadLetter))
		}
	}
	// ./bin/backfill, as `make build` leaves it.
	if err := os.MkdirAll(filepath.Join(w.dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(binDir, "backfill"), filepath.Join(w.dir, "bin", "backfill")); err != nil {
		t.Fatal(err)
	}

	w.s3 = testutil.StartS3(t, "bucket", "b", "events")
	for k, v := range map[string][]byte{
		"events/2024-01.jsonl":             ev,
		"events/dt=2024-01/part-0.parquet": parquet(t),
		"prefix/a.jsonl":                   ev,
		"b/a.jsonl":                        ev,
		"amplitude-export/a.json.gz":       gz(t, preset(t, "amplitude-export")),
		"mixpanel-export/a.jsonl":          preset(t, "mixpanel"),
		"segment-logs/a.jsonl":             preset(t, "segment"),
		"posthog-export/a.jsonl":           preset(t, "posthog"),
	} {
		w.s3.Put(t, "bucket", k, v)
	}
	w.s3.Put(t, "b", "events/dt=2024-01/part-0.parquet", parquet(t))
	// The bucket of the "Local storage servers" lines.
	w.s3.Put(t, "events", "events/a.jsonl", ev)
	w.s3.Put(t, "events", "events/dt=2024-01/part-0.parquet", parquet(t))

	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1",
		InitialObjects: []fakestorage.Object{
			{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "bucket", Name: "ga4-export/events.jsonl"}, Content: preset(t, "ga4")},
			{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "bucket", Name: "export/events.jsonl"}, Content: ev},
			{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: "events", Name: "events/a.jsonl"}, Content: ev},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Stop)
	u, _ := url.Parse(gcs.URL())
	w.gcsHost = u.Host

	w.az = azfake.New(map[string]map[string][]byte{"container": {"events/a.jsonl": ev, "prefix/a.jsonl": ev}, "events": {"events/a.jsonl": ev}})
	t.Cleanup(w.az.Close)

	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "BACKFILL_") || strings.HasPrefix(k, "AMPLITUDE_") ||
			strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "GOOGLE_") || k == "STORAGE_EMULATOR_HOST" || k == "PATH" || k == "JOB_COMPLETION_INDEX" {
			continue
		}
		w.env = append(w.env, kv)
	}
	w.env = append(w.env, testutil.AWSEnv...)
	w.env = append(w.env,
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+w.dir,
		// What a user's environment provides, pointed at this test's
		// servers: an Amplitude, AWS, GCS and Azure.
		"AMPLITUDE_API_KEY=readme-test-key",
		"BACKFILL_ENDPOINT="+w.emuURL,
		"BACKFILL_PROGRESS=none",
		"BACKFILL_LINGER=20ms",
		"AWS_ENDPOINT_URL_S3="+w.s3.Endpoint,
		"AWS_REGION=us-east-1",
		"AWS_S3_USE_PATH_STYLE=true",
		"AWS_RESPONSE_CHECKSUM_VALIDATION=when_required",
		"AWS_REQUEST_CHECKSUM_CALCULATION=when_required",
		"STORAGE_EMULATOR_HOST="+w.gcsHost,
		"AZURE_STORAGE_ACCOUNT=devaccount",
		"AZURE_STORAGE_KEY="+base64.StdEncoding.EncodeToString([]byte("azfake ignores signatures")),
		"AZURE_STORAGE_DOMAIN="+strings.TrimPrefix(w.az.URL, "http://"),
		"AZURE_STORAGE_PROTOCOL=http",
		"AZURE_STORAGE_IS_LOCAL_EMULATOR=true",
	)
	t.Cleanup(func() {
		for _, c := range w.bg {
			c.Process.Signal(os.Interrupt)
			c.Wait()
		}
	})
	return w
}

// rewrite applies the substitutions.
func (w *world) rewrite(cmd string) string {
	emu := w.emuURL
	if w.bgURL != "" {
		emu = w.bgURL
	}
	azHost := strings.TrimPrefix(w.az.URL, "http://")
	r := strings.NewReplacer(
		"http://127.0.0.1:PORT", emu,
		"https://minio.local:9000", w.s3.Endpoint,
		"127.0.0.1:10000", azHost,
		"127.0.0.1:8080", "127.0.0.1:0",
		"file:///data/", "file://"+w.dir+"/data/",
		"/tmp/rehearsal", w.dir+"/tmp/rehearsal",
		"http://127.0.0.1:9000", w.s3.Endpoint,
		"127.0.0.1:4443", w.gcsHost,
	)
	return r.Replace(cmd)
}

// wantCodes are the exit codes an example may end with: 0, or 3 where the
// data holds records a preset filters or that are refused on purpose.
func wantCodes(cmd string) []int {
	switch {
	case strings.Contains(cmd, "--preset") || strings.Contains(cmd, "mixpanel-export"):
		return []int{0, 3} // the vendor exports hold $identify/alias calls the presets filter
	}
	return []int{0}
}

// run runs one example in w and checks its outcome.
func (w *world) run(t *testing.T, ex example) {
	t.Helper()
	cmd := w.rewrite(ex.text)
	if ex.url {
		// Every URL goes through the one parser, which must read its query
		// as a query; then it is used as what its sentence says it is.
		l, err := location.Parse(cmd)
		if err != nil {
			t.Fatalf("README line %d: %s: %v", ex.line, ex.text, err)
		}
		if strings.Contains(ex.text, "?") && !strings.Contains(ex.text, "?.") && l.RawQuery == "" {
			t.Fatalf("README line %d: %s: the query was not read as a query (key %q)", ex.line, ex.text, l.Path)
		}
		switch {
		case objectURLForms[ex.text]:
			// The form of object URLs in insert_ids and reports: no query.
			if l.WithoutQuery() != ex.text {
				t.Fatalf("README line %d: %s is not an object URL form (parsed as %s)", ex.line, ex.text, l.WithoutQuery())
			}
			return
		case strings.Contains(ex.context, "checkpoint"):
			cmd = "backfill run --checkpoint '" + cmd + "' ./events/"
		default:
			cmd = "backfill run --dry-run '" + cmd + "'"
		}
	}
	if m := statusLine.FindStringSubmatch(cmd); m != nil && !w.ran[m[1]] {
		// Inspecting a job's checkpoint needs a job: the one this block
		// describes ran elsewhere (an Indexed Job), so run its 4 shards.
		for i := range 4 {
			w.run(t, example{text: fmt.Sprintf("JOB_COMPLETION_INDEX=%d backfill run --shard-count 4 --checkpoint %s s3://bucket/events/", i, m[1]), line: ex.line, block: ex.block})
		}
	}
	if i := strings.Index(cmd, "--checkpoint "); i >= 0 {
		w.ran[strings.Fields(cmd[i:])[1]] = true
	}
	if rest, ok := strings.CutPrefix(cmd, "export "); ok {
		// What the shell keeps for the block's later lines.
		for _, kv := range strings.Fields(rest) {
			if k, _, ok := strings.Cut(kv, "="); ok && !strings.Contains(kv, "...") {
				w.env = append(slices.DeleteFunc(w.env, func(e string) bool { return strings.HasPrefix(e, k+"=") }), kv)
			}
		}
	}
	if m := cronLine.FindStringSubmatch(cmd); m != nil {
		cmd = m[1] // what cron runs at the scheduled time
	}
	if strings.HasPrefix(cmd, "backfill emulator") {
		w.emulator(t, ex, cmd)
		return
	}
	if strings.Contains(cmd, "--shard-count") {
		// "where Kubernetes sets JOB_COMPLETION_INDEX"
		cmd = "JOB_COMPLETION_INDEX=2 " + cmd
	}
	shell := "sh"
	if strings.Contains(cmd, "<(") {
		shell = "bash" // process substitution, as in the README's `source <(...)`
		if _, err := exec.LookPath("bash"); err != nil {
			t.Skipf("README line %d: %s: no bash on this machine", ex.line, ex.text)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, shell, "-c", cmd)
	c.Dir, c.Env = w.dir, w.env
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if strings.HasPrefix(ex.text, "./bin/backfill demo") {
		// The demo paces a hot device at --eps 10 "to watch" it: let it
		// run for a while, then Ctrl-C it as a watcher would.
		c.Cancel = func() error { return c.Process.Signal(os.Interrupt) }
		ctx2, cancel2 := context.WithTimeout(ctx, 3*time.Second)
		defer cancel2()
		c = exec.CommandContext(ctx2, shell, "-c", "exec "+cmd)
		c.Dir, c.Env, c.Stdout, c.Stderr = w.dir, w.env, &stdout, &stderr
		c.Cancel = func() error { return c.Process.Signal(os.Interrupt) }
		c.WaitDelay = 60 * time.Second
		err := c.Run()
		if code := exitCode(err); code != 0 && code != 130 {
			t.Fatalf("README line %d: %s\nexit %d, want 0 or 130\n--- stdout:\n%s\n--- stderr:\n%s", ex.line, cmd, code, stdout.String(), stderr.String())
		}
		return
	}
	err := c.Run()
	code := exitCode(err)
	if ctx.Err() != nil {
		t.Fatalf("README line %d: %s: timed out\n%s", ex.line, cmd, stderr.String())
	}
	if !slices.Contains(wantCodes(cmd), code) {
		t.Fatalf("README line %d: %s\nexit %d, want %v\n--- stdout:\n%s\n--- stderr:\n%s", ex.line, cmd, code, wantCodes(cmd), stdout.String(), stderr.String())
	}
	if strings.HasPrefix(ex.text, "source <(backfill completion") && !strings.Contains(stderr.String()+stdout.String(), "") {
		t.Fatalf("completion printed nothing")
	}
}

// emulator starts `backfill emulator ...` as written, checks that its first
// line is its URL, and stops it (Ctrl-C) unless the line ends in '&', in
// which case it serves the rest of its block.
func (w *world) emulator(t *testing.T, ex example, cmd string) {
	t.Helper()
	bg := strings.HasSuffix(cmd, "&")
	cmd = strings.TrimSpace(strings.TrimSuffix(cmd, "&"))
	c := exec.Command("sh", "-c", "exec "+cmd)
	c.Dir, c.Env = w.dir, w.env
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	var first string
	select {
	case first = <-line:
	case <-time.After(30 * time.Second):
	}
	if !strings.HasPrefix(first, "http://127.0.0.1:") {
		c.Process.Kill()
		c.Wait()
		t.Fatalf("README line %d: %s: first line %q, want the base URL\n%s", ex.line, cmd, first, stderr.String())
	}
	if bg {
		w.bg, w.bgURL = append(w.bg, c), first
		return
	}
	c.Process.Signal(os.Interrupt)
	if code := exitCode(c.Wait()); code != 0 {
		t.Fatalf("README line %d: %s: exit %d after Ctrl-C\n%s", ex.line, cmd, code, stderr.String())
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

// TestReadmeExamples runs every example of README.md as written.
func TestReadmeExamples(t *testing.T) {
	path := readmePath
	if p := os.Getenv("BACKFILL_TEST_README"); p != "" {
		path = p // to try another branch's README
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	for _, s := range substitutions {
		if !strings.Contains(readme, s.from) {
			t.Errorf("substitution %q (%s) no longer occurs in the README: remove it", s.from, s.why)
		}
	}
	exs := extract(t, readme)
	if len(exs) < 40 {
		t.Fatalf("only %d examples extracted: the extraction is broken", len(exs))
	}
	buildBinary(t)
	rules := append(slices.Clone(skipRules), optionalSkipRules...)
	used := make([]bool, len(rules))
	// A block whose lines depend on each other (one starts a process in
	// the background with '&', or inspects a checkpoint with status or
	// report, or runs the shards of one job) runs in one world, in order;
	// the lines of other blocks are alternatives ("one example per source
	// kind"), each in a fresh world.
	sequence := map[int]bool{}
	for _, ex := range exs {
		if ex.block >= 0 && (strings.HasSuffix(ex.text, "&") || statusLine.MatchString(ex.text) || strings.Contains(ex.text, "--shard")) {
			sequence[ex.block] = true
		}
	}
	// Examples of one ```sh block run in order in one world (a block may
	// start an emulator for the next lines); inline ones each in their own.
	type group struct {
		name string
		exs  []example
	}
	var groups []group
	for _, ex := range exs {
		skipped := false
		for i, r := range rules {
			if r.match(ex.text) {
				t.Logf("README line %d: skipped: %s: %s", ex.line, ex.text, r.reason)
				used[i], skipped = true, true
				break
			}
		}
		if skipped {
			continue
		}
		if ex.block < 0 && !ex.url && len(strings.Fields(ex.text)) == 2 && ex.text != "backfill version" {
			t.Logf("README line %d: skipped: %s: names a subcommand in prose", ex.line, ex.text)
			continue
		}
		if ex.block >= 0 && len(groups) > 0 && groups[len(groups)-1].exs[0].block == ex.block && sequence[ex.block] {
			groups[len(groups)-1].exs = append(groups[len(groups)-1].exs, ex)
			continue
		}
		groups = append(groups, group{name: fmt.Sprintf("line%d", ex.line), exs: []example{ex}})
	}
	for i, r := range rules {
		if !used[i] && i < len(skipRules) {
			t.Errorf("skip rule %q matches no example any more: remove it", r.reason)
		}
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			var mentions strings.Builder
			for _, ex := range g.exs {
				mentions.WriteString(ex.text + "\n")
			}
			w := newWorld(t, mentions.String())
			for _, ex := range g.exs {
				w.run(t, ex)
			}
		})
	}
}

// TestExtract pins the extraction on a small document.
func TestExtract(t *testing.T) {
	doc := "text `backfill run ./x/` and `--flag` and `s3://b/p?region=r`\n```sh\n# comment\nbackfill plan ./e/   # why\n\n```\n```yaml\nnot: this\n```\n"
	got := extract(t, doc)
	want := []example{
		{text: "backfill run ./x/", line: 1, block: -1, context: "text `backfill run ./x/` and `--flag` and `s3://b/p?region=r`"},
		{text: "s3://b/p?region=r", line: 1, block: -1, url: true, context: "text `backfill run ./x/` and `--flag` and `s3://b/p?region=r`"},
		{text: "backfill plan ./e/", line: 4, block: 0},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("extract = %+v, want %+v", got, want)
	}
}
