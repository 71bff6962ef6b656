package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// memConn is an in-memory Conn for tests.
type memConn struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemConn() *memConn { return &memConn{m: map[string][]byte{}} }

func (c *memConn) Put(_ context.Context, k, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[string(k)] = v
	return nil
}

func (c *memConn) Get(_ context.Context, k []byte, _ bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[string(k)]; !ok {
		return errors.New("missing key " + string(k))
	}
	return nil
}

func (c *memConn) CAS(_ context.Context, k, expected, v []byte) (bool, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.m[string(k)]
	if !ok || !bytes.Equal(cur, expected) {
		return false, cur, nil
	}
	c.m[string(k)] = v
	return true, nil, nil
}

func (c *memConn) Scan(_ context.Context, prefix []byte, limit int, _ bool) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.m {
		if strings.HasPrefix(k, string(prefix)) && n < limit {
			n++
		}
	}
	if n == 0 {
		return 0, errors.New("empty scan of " + string(prefix))
	}
	return n, nil
}

func (c *memConn) BatchPut(_ context.Context, keys, values [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range keys {
		c.m[string(keys[i])] = values[i]
	}
	return nil
}

func TestRunEveryWorkload(t *testing.T) {
	for _, w := range Workloads {
		t.Run(string(w), func(t *testing.T) {
			c := newMemConn()
			cfg := Config{Workload: w, Clients: 8, Connections: 2, Keys: 1000, Ops: 2000}
			res, err := Run(context.Background(), cfg, []Conn{c, c})
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != 2000 || res.Errors != 0 {
				t.Fatalf("ops %d, errors %d (%s), want 2000 and 0", res.Ops, res.Errors, res.FirstErr)
			}
			if w == CAS && res.Conflicts >= res.Ops {
				t.Errorf("cas: %d conflicts of %d ops: no swap succeeded", res.Conflicts, res.Ops)
			}
			if res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
				t.Errorf("percentiles out of order: %+v", res.Latency)
			}
			if _, err := json.Marshal(res); err != nil {
				t.Fatal(err)
			}
			var tbl bytes.Buffer
			if err := res.WriteTable(&tbl); err != nil || !strings.Contains(tbl.String(), "p99.9") {
				t.Errorf("table: %v\n%s", err, tbl.String())
			}
		})
	}
}

func TestRunRateAndDuration(t *testing.T) {
	c := newMemConn()
	cfg := Config{Workload: Put, Clients: 4, Duration: 500 * time.Millisecond, Rate: 200}
	res, err := Run(context.Background(), cfg, []Conn{c})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for 0.5s is 100 operations; allow for timer slack.
	if res.Ops < 80 || res.Ops > 102 {
		t.Errorf("ops = %d, want about 100", res.Ops)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Workload: "nope"},
		{Workload: Put, Clients: -1},
		{Workload: Put, Rate: -1},
		{Workload: Mixed, ReadRatio: 1.5},
	}
	for _, c := range bad {
		if err := c.withDefaults().Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
	if err := (Config{}).withDefaults().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

// checkXML parses the whole document and returns the name of its root.
func checkXML(t *testing.T, b []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	root, depth := "", 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, b)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				root = e.Name.Local
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced elements")
	}
	return root
}

func TestWriteSVGWellFormed(t *testing.T) {
	c := newMemConn()
	full, err := Run(context.Background(), Config{Workload: Put, Clients: 4, Duration: 300 * time.Millisecond}, []Conn{c})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]*Result{
		"full":  full,
		"empty": newResult(DefaultConfig(), NewRecorder(time.Now(), time.Second), time.Second, 0),
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			r.Workload = "put <&> \"quoted\"" // must be escaped
			var b bytes.Buffer
			if err := WriteSVG(&b, r); err != nil {
				t.Fatal(err)
			}
			if root := checkXML(t, b.Bytes()); root != "svg" {
				t.Errorf("root element %q, want svg", root)
			}
			if strings.Contains(b.String(), "NaN") || strings.Contains(b.String(), "Inf") {
				t.Errorf("SVG holds NaN or Inf coordinates")
			}
		})
	}
}
