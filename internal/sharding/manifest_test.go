package sharding_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// manifestDir holds the Kubernetes manifests, relative to this package.
const manifestDir = "../../deploy/k8s"

// The types below are the subset of the Kubernetes API the manifests use,
// decoded strictly: a misspelt or misplaced field fails the test (a real
// API server would drop it, or reject the object). Add fields here when a
// manifest needs them, spelled as in the API reference.

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type header struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

type secret struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type serviceAccount struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
}

type k8sJob struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       jobSpec    `yaml:"spec"`
}

type jobSpec struct {
	CompletionMode          string            `yaml:"completionMode"`
	Completions             *int              `yaml:"completions"`
	Parallelism             *int              `yaml:"parallelism"`
	BackoffLimit            *int              `yaml:"backoffLimit"`
	BackoffLimitPerIndex    *int              `yaml:"backoffLimitPerIndex"`
	MaxFailedIndexes        *int              `yaml:"maxFailedIndexes"`
	PodReplacementPolicy    string            `yaml:"podReplacementPolicy"`
	PodFailurePolicy        *podFailurePolicy `yaml:"podFailurePolicy"`
	TTLSecondsAfterFinished *int              `yaml:"ttlSecondsAfterFinished"`
	ActiveDeadlineSeconds   *int              `yaml:"activeDeadlineSeconds"`
	Template                podTemplate       `yaml:"template"`
}

type podFailurePolicy struct {
	Rules []struct {
		Action      string `yaml:"action"`
		OnExitCodes *struct {
			ContainerName string `yaml:"containerName"`
			Operator      string `yaml:"operator"`
			Values        []int  `yaml:"values"`
		} `yaml:"onExitCodes"`
		OnPodConditions []struct {
			Type   string `yaml:"type"`
			Status string `yaml:"status"`
		} `yaml:"onPodConditions"`
	} `yaml:"rules"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string            `yaml:"serviceAccountName"`
	RestartPolicy                 string            `yaml:"restartPolicy"`
	TerminationGracePeriodSeconds *int              `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               *podSecurity      `yaml:"securityContext"`
	NodeSelector                  map[string]string `yaml:"nodeSelector"`
	Containers                    []container       `yaml:"containers"`
	Volumes                       []volume          `yaml:"volumes"`
}

type podSecurity struct {
	RunAsNonRoot   bool `yaml:"runAsNonRoot"`
	RunAsUser      int  `yaml:"runAsUser"`
	RunAsGroup     int  `yaml:"runAsGroup"`
	FSGroup        int  `yaml:"fsGroup"`
	SeccompProfile struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type container struct {
	Name      string   `yaml:"name"`
	Image     string   `yaml:"image"`
	Command   []string `yaml:"command"`
	Args      []string `yaml:"args"`
	Env       []envVar `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type volume struct {
	Name     string `yaml:"name"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
		Medium    string `yaml:"medium"`
	} `yaml:"emptyDir"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
}

// manifests is every object under manifestDir.
type manifests struct {
	jobs     map[string]*k8sJob // by file
	secrets  map[string]*secret // by object name
	accounts map[string]*serviceAccount
}

func strictDecode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", manifestDir, err)
	}
	m := &manifests{jobs: map[string]*k8sJob{}, secrets: map[string]*secret{}, accounts: map[string]*serviceAccount{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for doc := 0; ; doc++ {
			var node yaml.Node
			if err := dec.Decode(&node); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", f, doc, err)
			}
			raw, err := yaml.Marshal(&node)
			if err != nil {
				t.Fatal(err)
			}
			var h header
			if err := yaml.Unmarshal(raw, &h); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			where := fmt.Sprintf("%s (document %d, %s %s)", filepath.Base(f), doc, h.APIVersion, h.Kind)
			switch h.APIVersion + " " + h.Kind {
			case "batch/v1 Job":
				var j k8sJob
				if err := strictDecode(raw, &j); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				m.jobs[filepath.Base(f)] = &j
			case "v1 Secret":
				var s secret
				if err := strictDecode(raw, &s); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				m.secrets[s.Metadata.Name] = &s
			case "v1 ServiceAccount":
				var s serviceAccount
				if err := strictDecode(raw, &s); err != nil {
					t.Fatalf("%s: %v", where, err)
				}
				m.accounts[s.Metadata.Name] = &s
			default:
				t.Fatalf("%s: unexpected apiVersion/kind", where)
			}
		}
	}
	return m
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// flagValue returns the value of --name in args ("" and false when absent).
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"-" + name, "--" + name} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) as Kubernetes does for args: only variables the
// container declares expand; others are left verbatim (a silent bug).
func expand(s string, env map[string]string) (string, []string) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if v, ok := env[name]; ok {
			return v
		}
		missing = append(missing, name)
		return m
	})
	return out, missing
}

// bytesOf parses a Kubernetes quantity (Ki, Mi, Gi, or plain) or a
// GOMEMLIMIT value (KiB, MiB, GiB, or plain bytes).
func bytesOf(t *testing.T, q string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("quantity %q: %v", q, err)
			}
			return v * u.mult
		}
	}
	return 0
}

// TestManifests checks deploy/k8s: the invariants an API server enforces
// on the fields used, and those the binary relies on.
func TestManifests(t *testing.T) {
	m := loadManifests(t)
	if len(m.jobs) < 2 {
		t.Fatalf("want an Indexed Job and a single Job, found %d Jobs", len(m.jobs))
	}
	indexed := 0
	for file, j := range m.jobs {
		t.Run(file, func(t *testing.T) {
			checkJob(t, m, j)
		})
		if j.Spec.CompletionMode == "Indexed" {
			indexed++
		}
	}
	if indexed == 0 {
		t.Error("no Indexed Job among the manifests")
	}
}

func checkJob(t *testing.T, m *manifests, j *k8sJob) {
	s := &j.Spec
	ps := &s.Template.Spec
	if !dnsLabel.MatchString(j.Metadata.Name) || len(j.Metadata.Name) > 63 {
		t.Errorf("metadata.name %q is not a DNS label", j.Metadata.Name)
	}
	completions, parallelism := 1, 1
	if s.Completions != nil {
		completions = *s.Completions
	}
	if s.Parallelism != nil {
		parallelism = *s.Parallelism
	}
	switch s.CompletionMode {
	case "", "NonIndexed", "Indexed":
	default:
		t.Errorf("completionMode %q", s.CompletionMode)
	}
	switch ps.RestartPolicy {
	case "Never", "OnFailure":
	default:
		t.Errorf("restartPolicy %q: a Job needs Never or OnFailure", ps.RestartPolicy)
	}
	if s.BackoffLimitPerIndex != nil && s.CompletionMode != "Indexed" {
		t.Error("backoffLimitPerIndex needs completionMode Indexed")
	}
	if s.MaxFailedIndexes != nil && s.BackoffLimitPerIndex == nil {
		t.Error("maxFailedIndexes needs backoffLimitPerIndex")
	}
	if s.PodFailurePolicy != nil {
		if ps.RestartPolicy != "Never" {
			t.Error("podFailurePolicy needs restartPolicy Never")
		}
		if s.PodReplacementPolicy != "" && s.PodReplacementPolicy != "Failed" {
			t.Errorf("podReplacementPolicy %q: only Failed is allowed with podFailurePolicy", s.PodReplacementPolicy)
		}
		names := map[string]bool{}
		for _, c := range ps.Containers {
			names[c.Name] = true
		}
		for i, r := range s.PodFailurePolicy.Rules {
			switch r.Action {
			case "FailJob", "Ignore", "Count":
			case "FailIndex":
				if s.BackoffLimitPerIndex == nil {
					t.Errorf("rule %d: FailIndex needs backoffLimitPerIndex", i)
				}
			default:
				t.Errorf("rule %d: action %q", i, r.Action)
			}
			if (r.OnExitCodes == nil) == (len(r.OnPodConditions) == 0) {
				t.Errorf("rule %d: needs exactly one of onExitCodes and onPodConditions", i)
			}
			if e := r.OnExitCodes; e != nil {
				if e.ContainerName != "" && !names[e.ContainerName] {
					t.Errorf("rule %d: no container %q", i, e.ContainerName)
				}
				if e.Operator != "In" && e.Operator != "NotIn" {
					t.Errorf("rule %d: operator %q", i, e.Operator)
				}
				if len(e.Values) == 0 || !slices.IsSorted(e.Values) || (e.Operator == "In" && slices.Contains(e.Values, 0)) {
					t.Errorf("rule %d: exit code values %v must be sorted, non-empty, and without 0 for In", i, e.Values)
				}
				if slices.Contains(e.Values, exitRejected) && r.Action == "Ignore" {
					t.Errorf("rule %d: ignoring exit code 3 makes the Job rerun a finished shard forever", i)
				}
			}
		}
	}
	if len(ps.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(ps.Containers))
	}
	c := ps.Containers[0]
	if c.Image == "" {
		t.Error("container image is empty")
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("args %v: want the run subcommand first", c.Args)
	}
	if ps.ServiceAccountName != "" && m.accounts[ps.ServiceAccountName] == nil {
		t.Errorf("serviceAccountName %q has no manifest", ps.ServiceAccountName)
	}

	// The API key comes from a Secret, never from a literal or a flag.
	env := map[string]string{}
	var keyFrom string
	for _, e := range c.Env {
		if e.Name == "AMPLITUDE_API_KEY" || e.Name == "BACKFILL_API_KEY" {
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Errorf("env %s must come from a secretKeyRef", e.Name)
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			sec := m.secrets[ref.Name]
			if sec == nil {
				t.Errorf("env %s: no Secret %q among the manifests", e.Name, ref.Name)
				continue
			}
			if _, ok := sec.StringData[ref.Key]; !ok {
				if _, ok := sec.Data[ref.Key]; !ok {
					t.Errorf("env %s: Secret %q has no key %q", e.Name, ref.Name, ref.Key)
				}
			}
			keyFrom = ref.Name + "/" + ref.Key
			env[e.Name] = apiKey
			continue
		}
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			if e.Name == "JOB_COMPLETION_INDEX" && e.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
				t.Errorf("JOB_COMPLETION_INDEX from %q", e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = "0"
		default:
			env[e.Name] = e.Value
		}
	}
	if keyFrom == "" {
		t.Error("no AMPLITUDE_API_KEY from a secretKeyRef")
	}
	if _, ok := flagValue(c.Args, "api-key"); ok {
		t.Error("--api-key in args: process lists and the API show it; use the Secret")
	}
	for _, a := range c.Args {
		if _, missing := expand(a, env); len(missing) > 0 {
			t.Errorf("arg %q refers to undeclared env %v: Kubernetes leaves it unexpanded", a, missing)
		}
	}

	// Sharding: completions, parallelism and --shard-count agree.
	sc, hasCount := flagValue(c.Args, "shard-count")
	if _, ok := flagValue(c.Args, "shard"); ok {
		t.Error("--shard in a Job template: every pod would run the same shard; use --shard-count")
	}
	if s.CompletionMode == "Indexed" {
		n, err := strconv.Atoi(sc)
		if !hasCount || err != nil {
			t.Fatalf("Indexed Job without a numeric --shard-count (%q)", sc)
		}
		if completions != n || parallelism != n {
			t.Errorf("completions %d, parallelism %d, --shard-count %d: they must agree", completions, parallelism, n)
		}
	} else if hasCount || completions != 1 || parallelism != 1 {
		t.Errorf("a non-indexed Job must run one pod without --shard-count (completions %d, parallelism %d)", completions, parallelism)
	}
	if ck, _ := flagValue(c.Args, "checkpoint"); !strings.Contains(ck, "://") || strings.HasPrefix(ck, "file://") {
		t.Errorf("--checkpoint %q: a Job's pods need a bucket checkpoint that outlives them", ck)
	}
	if _, ok := flagValue(c.Args, "force"); ok || slices.Contains(c.Args, "--force") {
		t.Error("--force in a Job: it would resume a changed configuration; use --lock-wait to wait out a dead pod's lock")
	}
	if !slices.Contains(c.Args, "--allow-rejected") {
		t.Error("no --allow-rejected: exit code 3 would fail the Job for a shard that completed")
	}
	if _, ok := flagValue(c.Args, "lock-wait"); !ok {
		t.Error("no --lock-wait: a replacement pod would fail on the lock of the pod it replaces")
	}

	// Volumes: mounts exist, and with a read-only root the dead-letter
	// file and the spill directory are on a mounted volume.
	vols := map[string]bool{}
	for _, v := range ps.Volumes {
		vols[v.Name] = true
	}
	var mounts []string
	for _, vm := range c.VolumeMounts {
		if !vols[vm.Name] {
			t.Errorf("volumeMount %q has no volume", vm.Name)
		}
		if !vm.ReadOnly {
			mounts = append(mounts, vm.MountPath)
		}
	}
	onVolume := func(p string) bool {
		for _, mp := range mounts {
			if p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/") {
				return true
			}
		}
		return false
	}
	if c.SecurityContext != nil && c.SecurityContext.ReadOnlyRootFilesystem {
		dl, ok := flagValue(c.Args, "dead-letter")
		if !ok || !onVolume(dl) {
			t.Errorf("--dead-letter %q is not on a writable volume (read-only root)", dl)
		}
		tmp := cmpOr(env["TMPDIR"], "/tmp")
		if !onVolume(tmp) {
			t.Errorf("spill directory %s is not on a writable volume (read-only root)", tmp)
		}
	}

	// Resources: a memory limit above the request and above GOMEMLIMIT.
	req, lim := c.Resources.Requests["memory"], c.Resources.Limits["memory"]
	if req == "" || lim == "" {
		t.Fatalf("memory request %q and limit %q must be set", req, lim)
	}
	if bytesOf(t, lim) < bytesOf(t, req) {
		t.Errorf("memory limit %s below request %s", lim, req)
	}
	if gml := env["GOMEMLIMIT"]; gml != "" && bytesOf(t, gml) >= bytesOf(t, lim) {
		t.Errorf("GOMEMLIMIT %s must be below the memory limit %s", gml, lim)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestManifestArgs runs the binary with every Job's args, exactly as the
// pods would get them (shard index from JOB_COMPLETION_INDEX, $(VAR)
// expanded), against an in-process S3 standing in for s3://bucket, with
// --dry-run: the flags parse and validate, and every shard of an Indexed
// Job lists every object (shards split the events by device, not the
// objects).
func TestManifestArgs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped under -short")
	}
	m := loadManifests(t)
	s3 := startS3(t, "bucket")
	const objects = 12
	for i := range objects {
		s3.put(t, "bucket", fmt.Sprintf("events/part-%03d.jsonl", i),
			[]byte(`{"event_type":"a","device_id":"device-0001","time":1704067200000}`+"\n"))
	}
	for file, j := range m.jobs {
		t.Run(file, func(t *testing.T) {
			c := j.Spec.Template.Spec.Containers[0]
			shards := 1
			if j.Spec.CompletionMode == "Indexed" {
				shards = *j.Spec.Completions
			}
			seen := map[string]int{}
			for idx := range shards {
				env := map[string]string{"JOB_COMPLETION_INDEX": strconv.Itoa(idx)}
				var extra []string
				for _, e := range c.Env {
					switch {
					case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
						env[e.Name] = apiKey
					case e.ValueFrom == nil:
						env[e.Name] = e.Value
					}
				}
				for k, v := range env {
					if k != "TMPDIR" && k != "AMPLITUDE_API_KEY" { // the test's temp dir and key stay
						extra = append(extra, k+"="+v)
					}
				}
				var args []string
				for _, a := range c.Args {
					a, _ = expand(a, env)
					if rest, ok := strings.CutPrefix(a, "s3://"); ok {
						a = s3.URL(rest)
					}
					args = append(args, a)
				}
				// --dry-run goes before the sources (flags stop at the
				// first positional argument).
				last := len(args) - 1
				args = append(append(args[:last:last], "--dry-run"), args[last])
				code, out, errOut := run(t, childEnv(extra...), args...)
				if code != 0 {
					t.Fatalf("index %d: exit %d\nargs %q\n%s%s", idx, code, args, out, errOut)
				}
				for _, line := range strings.Split(out, "\n") {
					// Plan rows: "#  ROUTE  SIZE  OBJECT".
					f := strings.Fields(line)
					if len(f) < 4 {
						continue
					}
					if _, err := strconv.Atoi(f[0]); err == nil && strings.HasPrefix(f[len(f)-1], "s3://bucket/events/") {
						seen[f[len(f)-1]]++
					}
				}
			}
			if len(seen) != objects {
				t.Errorf("the %d shards listed %d distinct objects, want %d: %v", shards, len(seen), objects, seen)
			}
			for u, n := range seen {
				if n != shards {
					t.Errorf("%s listed by %d of the %d shards", u, n, shards)
				}
			}
		})
	}
}
