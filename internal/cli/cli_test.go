package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// testTicket returns a valid ticket naming one node on port.
func testTicket(t *testing.T, port int) string {
	t.Helper()
	var key transport.PublicKey
	key[0] = 1
	s := ticket.Ticket{
		ClusterID:  "test-cluster",
		Peers:      []ticket.Peer{{Key: key, Addrs: []string{fmt.Sprintf("127.0.0.1:%d", port)}}},
		Credential: []byte("credential"),
	}.String()
	if _, err := ticket.Parse(s); err != nil {
		t.Fatalf("test ticket does not parse: %v", err)
	}
	return s
}

// fakeRemote implements remote; methods not overridden panic (nil embedded
// interface), which fails the test that reached them.
type fakeRemote struct {
	remote
	get        func(*api.GetRequest) (*api.GetResponse, error)
	cas        func(*api.CASRequest) (*api.CASResponse, error)
	scan       func(*api.ScanRequest) (*api.ScanResponse, error)
	batchWrite func(*api.BatchWriteRequest) (*api.BatchWriteResponse, error)
	status     func() (*api.StatusResponse, error)
	backup     func(io.Writer) (int64, error)
}

func (f *fakeRemote) Get(_ context.Context, r *api.GetRequest) (*api.GetResponse, error) {
	return f.get(r)
}
func (f *fakeRemote) CAS(_ context.Context, r *api.CASRequest) (*api.CASResponse, error) {
	return f.cas(r)
}
func (f *fakeRemote) Scan(_ context.Context, r *api.ScanRequest) (*api.ScanResponse, error) {
	return f.scan(r)
}
func (f *fakeRemote) BatchWrite(_ context.Context, r *api.BatchWriteRequest) (*api.BatchWriteResponse, error) {
	return f.batchWrite(r)
}
func (f *fakeRemote) Status(context.Context) (*api.StatusResponse, error) { return f.status() }
func (f *fakeRemote) Backup(_ context.Context, w io.Writer) (int64, error) {
	return f.backup(w)
}

// invocation is the outcome of one in-process run.
type invocation struct {
	code           int
	stdout, stderr string
	cfg            client.Config // what the client was dialed with
	dialed         bool
}

// runWith runs aspen-cli in-process with f as the cluster (nil: dialing fails
// the test).
func runWith(t *testing.T, f remote, args ...string) invocation {
	t.Helper()
	var out, errb bytes.Buffer
	var inv invocation
	dial := func(cfg client.Config) (remote, func(), error) {
		inv.cfg, inv.dialed = cfg, true
		if f == nil {
			t.Errorf("unexpected dial for %q", args)
			return nil, nil, errors.New("no cluster in this test")
		}
		return f, func() {}, nil
	}
	inv.code = run(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb}, dial)
	inv.stdout, inv.stderr = out.String(), errb.String()
	return inv
}

// isolate points ticket discovery at an empty dev dir and clears the env.
func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("ASPEN_DEV_DIR", dir)
	t.Setenv("ASPEN_TICKET", "")
	t.Setenv("ASPEN_TOKEN", "")
	return dir
}

func TestParseBatchOps(t *testing.T) {
	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("k%d=v", i)
	}
	tests := []struct {
		name    string
		pairs   []string
		deletes []string
		want    []api.WriteOp
		wantErr string
	}{
		{name: "split at first =", pairs: []string{"a=b=c", "url=http://x/?q=1"}, want: []api.WriteOp{
			{Kind: api.WriteSet, Key: []byte("a"), Value: []byte("b=c")},
			{Kind: api.WriteSet, Key: []byte("url"), Value: []byte("http://x/?q=1")},
		}},
		{name: "empty value allowed", pairs: []string{"a="}, want: []api.WriteOp{
			{Kind: api.WriteSet, Key: []byte("a"), Value: []byte("")},
		}},
		{name: "sets then deletes", pairs: []string{"a=1"}, deletes: []string{"b"}, want: []api.WriteOp{
			{Kind: api.WriteSet, Key: []byte("a"), Value: []byte("1")},
			{Kind: api.WriteDelete, Key: []byte("b")},
		}},
		{name: "only deletes", deletes: []string{"x"}, want: []api.WriteOp{{Kind: api.WriteDelete, Key: []byte("x")}}},
		{name: "empty key names the argument", pairs: []string{"a=1", "=v"}, wantErr: `argument #2 "=v": key must not be empty`},
		{name: "missing =", pairs: []string{"novalue"}, wantErr: `argument #1 "novalue": expected KEY=VALUE`},
		{name: "nothing", wantErr: "nothing to write"},
		{name: "101 operations", pairs: many, wantErr: "at most 100 operations per batch"},
		{name: "100 sets + 1 delete", pairs: many[:100], deletes: []string{"x"}, wantErr: "at most 100 operations per batch"},
		{name: "empty delete key", deletes: []string{""}, wantErr: "--delete key must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBatchOps(tt.pairs, tt.deletes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if code := exitCode(&runError{err}); code != exitUsage {
					t.Errorf("exit code = %d, want %d", code, exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d ops, want %d", len(got), len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.Kind != w.Kind || string(g.Key) != string(w.Key) || string(g.Value) != string(w.Value) {
					t.Errorf("op %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "5000", want: 5 * time.Second},
		{in: "1", want: time.Millisecond},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "0", wantErr: true},
		{in: "-5", wantErr: true},
		{in: "-1s", wantErr: true},
		{in: "soon", wantErr: true},
		{in: "", wantErr: true},
		{in: "99999999999999999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTimeout(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseTimeout(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseTimeout(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestTimeoutFlagReachesClient(t *testing.T) {
	isolate(t)
	t.Setenv("ASPEN_TICKET", testTicket(t, 4701))
	f := &fakeRemote{get: func(*api.GetRequest) (*api.GetResponse, error) { return &api.GetResponse{}, nil }}
	for _, tt := range []struct {
		args []string
		want time.Duration
	}{
		{args: []string{"kv", "get", "k"}, want: defaultTimeout},
		{args: []string{"kv", "get", "k", "--timeout", "1500"}, want: 1500 * time.Millisecond},
		{args: []string{"--timeout", "2m", "kv", "get", "k"}, want: 2 * time.Minute},
	} {
		inv := runWith(t, f, tt.args...)
		if inv.code != 0 || inv.cfg.Timeout != tt.want {
			t.Errorf("%q: code %d, timeout %v; want 0, %v (stderr %q)", tt.args, inv.code, inv.cfg.Timeout, tt.want, inv.stderr)
		}
	}
}

func TestParseTTL(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "10s", want: 10000},
		{in: "1ms", want: 1},
		{in: "30", wantErr: true},
		{in: "0s", wantErr: true},
		{in: "100us", wantErr: true},
		{in: "87600h1s", wantErr: true},
	} {
		got, err := parseTTL(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseTTL(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestBytesJSON(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{name: "utf-8", in: []byte("héllo"), want: `"héllo"`},
		{name: "empty", in: []byte{}, want: `""`},
		{name: "nil is empty", in: nil, want: `""`},
		{name: "newline and tab", in: []byte("a\n\tb"), want: `"a\n\tb"`},
		{name: "binary", in: []byte{0xff, 0x00, 0xfe}, want: `{"base64":"/wD+"}`},
		{name: "truncated utf-8", in: []byte("h\xc3"), want: `{"base64":"aMM="}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(bytesJSON(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDisplay(t *testing.T) {
	long := strings.Repeat("x", 61)
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{in: "plain value", want: "plain value"},
		{in: "line\nbreak", want: `"line\nbreak"`},
		{in: "\xff", want: `"\xff"`},
		{in: long, max: 60, want: strings.Repeat("x", 60) + "..."},
		{in: long[:60], max: 60, want: long[:60]},
	}
	for _, tt := range tests {
		if got := display([]byte(tt.in), tt.max); got != tt.want {
			t.Errorf("display(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "nil", err: nil, want: 0},
		{name: "negative answer", err: &runError{errNegative}, want: 1},
		{name: "usage error from a command", err: &runError{usageErrorf("bad")}, want: 2},
		{name: "cobra parse error", err: errors.New("unknown flag: --x"), want: 2},
		{name: "not found", err: &runError{api.Errorf(api.CodeNotFound, "gone")}, want: 1},
		{name: "conflict", err: &runError{api.Errorf(api.CodeConflict, "x")}, want: 1},
		{name: "invalid argument", err: &runError{api.Errorf(api.CodeInvalidArgument, "key too large")}, want: 2},
		{name: "unavailable", err: &runError{fmt.Errorf("call: %w", api.Errorf(api.CodeUnavailable, "x"))}, want: 3},
		{name: "not initialized", err: &runError{api.Errorf(api.CodeNotInitialized, "x")}, want: 3},
		{name: "internal", err: &runError{api.Errorf(api.CodeInternal, "x")}, want: 3},
		{name: "unreachable (plain error from a command)", err: &runError{context.DeadlineExceeded}, want: 3},
		{name: "local write failure", err: &runError{&localError{errors.New("disk full")}}, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestTicketDiscovery(t *testing.T) {
	flagTicket, envTicket, fileTicket := testTicket(t, 1001), testTicket(t, 1002), testTicket(t, 1003)
	tests := []struct {
		name     string
		flag     string // "" = not given
		env      string
		file     *string // nil = no dev ticket file
		want     string
		wantCode int
		wantErr  string
	}{
		{name: "flag wins", flag: flagTicket, env: envTicket, file: &fileTicket, want: flagTicket},
		{name: "env before dev file", env: envTicket, file: &fileTicket, want: envTicket},
		{name: "dev file", file: &fileTicket, want: fileTicket},
		{name: "dev file with newline", file: ptr(fileTicket + "\n"), want: fileTicket},
		{name: "nothing", wantCode: 2, wantErr: "aspen-node --dev"},
		{name: "empty dev file", file: ptr(""), wantCode: 2, wantErr: "is empty"},
		{name: "bad ticket", env: "nonsense", wantCode: 2, wantErr: "invalid cluster ticket from $ASPEN_TICKET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := isolate(t)
			t.Setenv("ASPEN_TICKET", tt.env)
			if tt.file != nil {
				if err := os.WriteFile(filepath.Join(dir, "cluster-ticket.txt"), []byte(*tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"kv", "get", "k"}
			if tt.flag != "" {
				args = append(args, "--ticket", tt.flag)
			}
			var f remote
			if tt.wantErr == "" {
				f = &fakeRemote{get: func(*api.GetRequest) (*api.GetResponse, error) { return &api.GetResponse{}, nil }}
			}
			inv := runWith(t, f, args...)
			if inv.code != tt.wantCode {
				t.Fatalf("exit code %d, want %d (stderr %q)", inv.code, tt.wantCode, inv.stderr)
			}
			if tt.wantErr != "" {
				if !strings.Contains(inv.stderr, tt.wantErr) || strings.Count(inv.stderr, "\n") != 1 {
					t.Errorf("stderr = %q, want one line containing %q", inv.stderr, tt.wantErr)
				}
				return
			}
			if inv.cfg.Ticket != tt.want {
				t.Errorf("dialed with ticket %q, want %q", inv.cfg.Ticket, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestRootHelp(t *testing.T) {
	isolate(t)
	inv := runWith(t, nil, "--help")
	if inv.code != 0 {
		t.Fatalf("exit code %d, stderr %q", inv.code, inv.stderr)
	}
	for _, want := range []string{"kv ", "cluster ", "completion", "Exit codes", "--json", "--ticket", "--timeout"} {
		if !strings.Contains(inv.stdout, want) {
			t.Errorf("help does not mention %q:\n%s", want, inv.stdout)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	isolate(t)
	tests := [][]string{
		{},
		{"bogus"},
		{"kv"},
		{"kv", "gett", "k"},
		{"kv", "get"},
		{"--json", "kv", "get"},
		{"kv", "get", "k", "--json", "--consistency", "eventual"},
		{"--json", "kv", "get", "a", "b"},
		{"--json", "kv", "set", "k"},
		{"--json", "kv", "set", "k", "v", "--file", "x"},
		{"kv", "set", "k", "v", "--ttl", "30"},
		{"kv", "get", "k", "--unknown"},
		{"--timeout", "abc", "kv", "get", "k"},
		{"-v", "-q", "kv", "get", "k"},
		{"kv", "cas", "k"},
		{"kv", "cad", "k", "--expected", ""},
		{"kv", "cad", "k"},
		{"kv", "scan", "--limit", "10001"},
		{"kv", "scan", "a", "b"},
		{"kv", "batch-read"},
		{"kv", "batch-write", "=v"},
		{"kv", "batch-write"},
		{"cluster", "add-learner", "--node-id", "2"},
		{"cluster", "add-learner", "--node-id", "2", "--addr", strings.Repeat("ab", 32)},
		{"cluster", "add-learner", "--node-id", "2", "--addr", "zz@127.0.0.1:1"},
		{"cluster", "add-learner", "--node-id", "2", "--addr", strings.Repeat("ab", 32) + "@"},
		{"cluster", "add-learner", "--node-id", "2", "--addr", strings.Repeat("ab", 32) + "@host"},
		{"cluster", "add-learner", "--node-id", "x", "--addr", strings.Repeat("ab", 32) + "@h:1"},
		{"cluster", "change-membership"},
		{"cluster", "change-membership", "1", "two"},
		{"cluster", "change-membership", "1", "1"},
		{"cluster", "promote"},
		{"cluster", "promote", "--learner-id", "2", "--replace", "2"},
		{"cluster", "remove", "0"},
		{"cluster", "backup"},
		{"cluster", "backup", "/nonexistent-dir/x.bak"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			inv := runWith(t, nil, args...)
			if inv.code != 2 {
				t.Errorf("exit code %d, want 2 (stderr %q)", inv.code, inv.stderr)
			}
			if inv.stdout != "" {
				t.Errorf("stdout = %q, want nothing", inv.stdout)
			}
			if strings.Count(inv.stderr, "\n") != 1 {
				t.Errorf("stderr = %q, want exactly one line", inv.stderr)
			}
		})
	}
}

func TestBatchReadTooManyKeys(t *testing.T) {
	isolate(t)
	args := []string{"--json", "kv", "batch-read"}
	for i := range 101 {
		args = append(args, fmt.Sprint("k", i))
	}
	if inv := runWith(t, nil, args...); inv.code != 2 {
		t.Errorf("exit code %d, want 2 (stderr %q)", inv.code, inv.stderr)
	}
}

// decodeJSON parses stdout as exactly one JSON document.
func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, s)
	}
	if dec.More() {
		t.Fatalf("stdout has more than one JSON document:\n%s", s)
	}
	return m
}

func TestKVGet(t *testing.T) {
	isolate(t)
	t.Setenv("ASPEN_TICKET", testTicket(t, 4701))
	f := &fakeRemote{get: func(r *api.GetRequest) (*api.GetResponse, error) {
		switch string(r.Key) {
		case "here":
			return &api.GetResponse{KV: &api.KeyValue{Key: r.Key, Value: []byte("v1"), Version: 2, CreateRevision: 5, ModRevision: 9}}, nil
		case "bin":
			return &api.GetResponse{KV: &api.KeyValue{Key: r.Key, Value: []byte{0xff}, Version: 1, CreateRevision: 1, ModRevision: 1}}, nil
		case "nf-error":
			return nil, api.Errorf(api.CodeNotFound, "no such key")
		}
		return &api.GetResponse{}, nil
	}}

	inv := runWith(t, f, "kv", "get", "here")
	if inv.code != 0 || inv.stdout != "v1\n" {
		t.Errorf("human get: code %d stdout %q", inv.code, inv.stdout)
	}
	inv = runWith(t, f, "kv", "get", "gone")
	if inv.code != 0 || inv.stdout != "Key 'gone' not found\n" {
		t.Errorf("human get missing: code %d stdout %q", inv.code, inv.stdout)
	}

	inv = runWith(t, f, "--json", "kv", "get", "here")
	m := decodeJSON(t, inv.stdout)
	if inv.code != 0 || m["does_exist"] != true || m["value"] != "v1" || m["version"] != 2.0 || m["create_revision"] != 5.0 || m["mod_revision"] != 9.0 || m["key"] != "here" {
		t.Errorf("json get: code %d %v", inv.code, m)
	}
	for _, key := range []string{"gone", "nf-error"} {
		inv = runWith(t, f, "kv", "get", key, "--json")
		m = decodeJSON(t, inv.stdout)
		v, hasValue := m["value"]
		_, hasVersion := m["version"]
		if inv.code != 0 || m["does_exist"] != false || !hasValue || v != nil || hasVersion {
			t.Errorf("json get %s: code %d %v", key, inv.code, m)
		}
	}
	inv = runWith(t, f, "--json", "kv", "get", "bin")
	m = decodeJSON(t, inv.stdout)
	if b, ok := m["value"].(map[string]any); !ok || b["base64"] != "/w==" {
		t.Errorf("json get binary: %v", m)
	}
}

func TestKVCASConflictExitsOne(t *testing.T) {
	isolate(t)
	t.Setenv("ASPEN_TICKET", testTicket(t, 4701))
	var last *api.CASRequest
	f := &fakeRemote{cas: func(r *api.CASRequest) (*api.CASResponse, error) {
		last = r
		switch string(r.Key) {
		case "ok":
			return &api.CASResponse{Succeeded: true}, nil
		case "missing":
			return &api.CASResponse{}, nil
		}
		return &api.CASResponse{Actual: &api.KeyValue{Key: r.Key, Value: []byte("current")}}, nil
	}}

	inv := runWith(t, f, "kv", "cas", "ok", "--new-value", "n")
	if inv.code != 0 || inv.stdout != "OK\n" || !last.MustNotExist {
		t.Errorf("create-if-absent: code %d stdout %q req %+v", inv.code, inv.stdout, last)
	}
	inv = runWith(t, f, "kv", "cas", "ok", "--expected", "", "--new-value", "n")
	if inv.code != 0 || last.MustNotExist || last.Expected == nil {
		t.Errorf("--expected '': code %d req %+v", inv.code, last)
	}
	inv = runWith(t, f, "kv", "cas", "k", "--expected", "old", "--new-value", "n")
	if inv.code != 1 || inv.stdout != "CONFLICT: value has changed (current: current)\n" || inv.stderr != "" {
		t.Errorf("human conflict: code %d stdout %q stderr %q", inv.code, inv.stdout, inv.stderr)
	}
	inv = runWith(t, f, "--json", "kv", "cas", "k", "--expected", "old", "--new-value", "n")
	m := decodeJSON(t, inv.stdout)
	if inv.code != 1 || m["status"] != "conflict" || m["is_success"] != false || m["actual_value"] != "current" {
		t.Errorf("json conflict: code %d %v", inv.code, m)
	}
	inv = runWith(t, f, "--json", "kv", "cas", "missing", "--expected", "old", "--new-value", "n")
	m = decodeJSON(t, inv.stdout)
	if v, ok := m["actual_value"]; inv.code != 1 || !ok || v != nil {
		t.Errorf("json conflict on missing key: code %d %v", inv.code, m)
	}
	inv = runWith(t, f, "--json", "kv", "cas", "ok", "--new-value", "n")
	m = decodeJSON(t, inv.stdout)
	if _, ok := m["actual_value"]; inv.code != 0 || ok || m["status"] != "success" {
		t.Errorf("json success: code %d %v", inv.code, m)
	}
}

func TestKVScan(t *testing.T) {
	isolate(t)
	t.Setenv("ASPEN_TICKET", testTicket(t, 4701))
	var last *api.ScanRequest
	f := &fakeRemote{scan: func(r *api.ScanRequest) (*api.ScanResponse, error) {
		last = r
		resp := &api.ScanResponse{Entries: []api.KeyValue{
			{Key: []byte("a"), Value: []byte(strings.Repeat("v", 70)), Version: 1},
			{Key: []byte("b"), Value: []byte("short"), Version: 3},
		}}
		if r.ContinuationToken == "" {
			resp.ContinuationToken = "b"
		}
		return resp, nil
	}}
	inv := runWith(t, f, "kv", "scan", "p", "--limit", "2")
	want := "a: " + strings.Repeat("v", 60) + "...\nb: short\n"
	if inv.code != 0 || inv.stdout != want || inv.stderr != "more keys: use --token b\n" {
		t.Errorf("human scan: code %d stdout %q stderr %q", inv.code, inv.stdout, inv.stderr)
	}
	if string(last.Prefix) != "p" || last.Limit != 2 {
		t.Errorf("request %+v", last)
	}
	inv = runWith(t, f, "-q", "kv", "scan")
	if inv.stderr != "" || last.Limit != defaultScanLimit {
		t.Errorf("quiet scan: stderr %q, limit %d", inv.stderr, last.Limit)
	}
	inv = runWith(t, f, "--json", "kv", "scan", "--token", "b")
	m := decodeJSON(t, inv.stdout)
	if tok, ok := m["continuation_token"]; !ok || tok != nil || m["count"] != 2.0 || last.ContinuationToken != "b" {
		t.Errorf("json scan: %v (request %+v)", m, last)
	}
	if inv.stderr != "" {
		t.Errorf("json scan wrote to stderr: %q", inv.stderr)
	}
}

func TestKVBatchWrite(t *testing.T) {
	isolate(t)
	t.Setenv("ASPEN_TICKET", testTicket(t, 4701))
	f := &fakeRemote{batchWrite: func(r *api.BatchWriteRequest) (*api.BatchWriteResponse, error) {
		return &api.BatchWriteResponse{OperationsApplied: len(r.Ops)}, nil
	}}
	inv := runWith(t, f, "kv", "batch-write", "a=1", "b=2", "--delete", "c")
	if inv.code != 0 || inv.stdout != "OK: 3 operations applied\n" {
		t.Errorf("human: code %d stdout %q", inv.code, inv.stdout)
	}
	inv = runWith(t, f, "--json", "kv", "batch-write", "a=1")
	m := decodeJSON(t, inv.stdout)
	if m["is_success"] != true || m["operations_applied"] != 1.0 {
		t.Errorf("json: %v", m)
	}
}

func TestServerErrorLine(t *testing.T) {
	isolate(t)
	t.Setenv("ASPEN_TICKET", testTicket(t, 4701))
	f := &fakeRemote{get: func(*api.GetRequest) (*api.GetResponse, error) {
		return nil, api.Errorf(api.CodeUnauthorized, "missing credential")
	}}
	inv := runWith(t, f, "--json", "kv", "get", "x")
	if inv.code != 3 || inv.stdout != "" || inv.stderr != "UNAUTHORIZED: missing credential; check the ticket (and token)\n" {
		t.Errorf("code %d stdout %q stderr %q", inv.code, inv.stdout, inv.stderr)
	}
}

func TestClusterStatusTable(t *testing.T) {
	isolate(t)
	t.Setenv("ASPEN_TICKET", testTicket(t, 4701))
	k1, k2 := strings.Repeat("a", 64), strings.Repeat("b", 64)
	f := &fakeRemote{status: func() (*api.StatusResponse, error) {
		return &api.StatusResponse{LeaderID: 1, Nodes: []api.NodeStatus{
			{NodeID: 1, EndpointID: k1, Addr: k1 + "@127.0.0.1:4701", IsLeader: true, IsVoter: true},
			{NodeID: 22, EndpointID: k2, Addr: k2 + "@127.0.0.1:4702"},
		}}, nil
	}}
	inv := runWith(t, f, "cluster", "status")
	lines := strings.Split(strings.TrimSuffix(inv.stdout, "\n"), "\n")
	if inv.code != 0 || len(lines) != 4 {
		t.Fatalf("code %d stdout:\n%s", inv.code, inv.stdout)
	}
	if !strings.HasPrefix(lines[0], "NODE") || !strings.HasPrefix(lines[1], "1*") || !strings.Contains(lines[1], "voter") ||
		!strings.Contains(lines[2], "learner") || !strings.HasSuffix(lines[2], " 127.0.0.1:4702") {
		t.Errorf("table:\n%s", inv.stdout)
	}
	if strings.Index(lines[0], "ROLE") != strings.Index(lines[1], "voter") {
		t.Errorf("columns not aligned:\n%s", inv.stdout)
	}
	inv = runWith(t, f, "--json", "cluster", "status")
	m := decodeJSON(t, inv.stdout)
	nodes, _ := m["nodes"].([]any)
	if len(nodes) != 2 || m["leader_id"] != 1.0 || nodes[1].(map[string]any)["addr"] != k2+"@127.0.0.1:4702" {
		t.Errorf("json: %v", m)
	}
}

func TestClusterBackup(t *testing.T) {
	isolate(t)
	t.Setenv("ASPEN_TICKET", testTicket(t, 4701))
	dir := t.TempDir()
	path := filepath.Join(dir, "state.bak")

	fail := &fakeRemote{backup: func(w io.Writer) (int64, error) {
		n, _ := w.Write([]byte("partial"))
		return int64(n), api.Errorf(api.CodeUnavailable, "stream reset")
	}}
	inv := runWith(t, fail, "cluster", "backup", path)
	if inv.code != 3 {
		t.Errorf("failed backup: code %d stderr %q", inv.code, inv.stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed backup left files: %v", entries)
	}

	ok := &fakeRemote{backup: func(w io.Writer) (int64, error) {
		n, err := w.Write([]byte("snapshot-bytes"))
		return int64(n), err
	}}
	inv = runWith(t, ok, "--json", "cluster", "backup", path)
	m := decodeJSON(t, inv.stdout)
	if inv.code != 0 || m["status"] != "success" || m["bytes"] != 14.0 || m["file"] != path {
		t.Errorf("backup: code %d %v stderr %q", inv.code, m, inv.stderr)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("backup left extra files: %v", entries)
	}
}
