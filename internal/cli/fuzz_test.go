package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
)

// FuzzParseTimeout checks --timeout parsing (and the coordination --timeout
// flag built on it): no panic, an accepted value is positive, and a bare
// number means that many milliseconds.
func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"30s", "5000", " 2m ", "0", "-1", "9223372036854", "1ns", "abc", "1h1m1s1ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTimeout(s)
		if err != nil {
			return
		}
		if d <= 0 {
			t.Fatalf("parseTimeout(%q) = %v, want positive", s, d)
		}
		if n, ok := bareInt(s); ok && d/time.Millisecond != time.Duration(n) {
			t.Fatalf("parseTimeout(%q) = %v, want %d ms", s, d, n)
		}
		var m msValue
		if err := m.Set(s); err == nil && m < 1 {
			t.Fatalf("--timeout %q set %d ms, want at least 1", s, m)
		}
	})
}

// bareInt parses s as parseTimeout reads a bare number of milliseconds.
func bareInt(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	var n int64
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimLeft(s, "+-")
	if len(s)-len(digits) > 1 || digits == "" || len(digits) > 18 {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// FuzzParseTTL checks --ttl parsing: no panic, and an accepted TTL is
// within 1ms..api.MaxTTLMs.
func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"30s", "24h", "1ms", "0s", "-5m", "999999h", "5", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseTTL(s)
		if err == nil && (ms < 1 || ms > api.MaxTTLMs) {
			t.Fatalf("parseTTL(%q) = %d ms, outside 1..%d", s, ms, api.MaxTTLMs)
		}
	})
}

// FuzzParseBatchOps checks the arguments of kv batch-write (KEY=VALUE
// pairs, one per line of the input, and --delete keys after a NUL): no
// panic, and an accepted batch round-trips to the same pairs.
func FuzzParseBatchOps(f *testing.F) {
	f.Add("a=1\nb=2", "")
	f.Add("a==b\n=x", "c")
	f.Add("novalue", "")
	f.Add("", "")
	f.Add("k=", "d\ne")
	f.Fuzz(func(t *testing.T, pairText, delText string) {
		pairs, deletes := split(pairText), split(delText)
		ops, err := parseBatchOps(pairs, deletes)
		if err != nil {
			return
		}
		if len(ops) != len(pairs)+len(deletes) || len(ops) == 0 || len(ops) > api.MaxBatchOps {
			t.Fatalf("%q, %q: %d ops", pairs, deletes, len(ops))
		}
		for i, op := range ops {
			if len(op.Key) == 0 {
				t.Fatalf("op %d has an empty key", i)
			}
			if i < len(pairs) {
				if op.Kind != api.WriteSet || string(op.Key)+"="+string(op.Value) != pairs[i] {
					t.Fatalf("pair %q became %+v", pairs[i], op)
				}
			} else if op.Kind != api.WriteDelete || string(op.Key) != deletes[i-len(pairs)] {
				t.Fatalf("delete %q became %+v", deletes[i-len(pairs)], op)
			}
		}
	})
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// FuzzParseVoters checks the node IDs of change-membership: no panic,
// accepted IDs are positive and distinct.
func FuzzParseVoters(f *testing.F) {
	f.Add("1\n2\n3")
	f.Add("1\n1")
	f.Add("0")
	f.Add(" 7 \n18446744073709551615")
	f.Add("-1\nx")
	f.Fuzz(func(t *testing.T, text string) {
		args := split(text)
		ids, err := parseVoters(args)
		if err != nil {
			return
		}
		seen := map[uint64]bool{}
		for _, id := range ids {
			if id == 0 || seen[id] {
				t.Fatalf("parseVoters(%q) = %v", args, ids)
			}
			seen[id] = true
		}
		if len(ids) != len(args) {
			t.Fatalf("parseVoters(%q) = %v: %d ids for %d args", args, ids, len(ids), len(args))
		}
	})
}

// FuzzParseLearnerAddr checks --addr of add-learner: no panic, and the
// canonical form it returns parses to itself.
func FuzzParseLearnerAddr(f *testing.F) {
	key := strings.Repeat("3b", 32)
	f.Add(key + "@10.0.0.2:7946")
	f.Add(key + "@[::1]:1,127.0.0.1:2")
	f.Add("@:")
	f.Add(key[:63] + "@h:1")
	f.Fuzz(func(t *testing.T, s string) {
		canon, err := parseLearnerAddr(s)
		if err != nil {
			return
		}
		again, err := parseLearnerAddr(canon)
		if err != nil || again != canon {
			t.Fatalf("parseLearnerAddr(%q) = %q, which parses to %q, %v", s, canon, again, err)
		}
	})
}
