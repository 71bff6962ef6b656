package ticket

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/aspen-dev/aspen/internal/transport"
)

func testKey(b byte) transport.PublicKey {
	var k transport.PublicKey
	for i := range k {
		k[i] = b
	}
	return k
}

func sampleTicket() Ticket {
	return Ticket{
		ClusterID: "0123456789abcdef0123456789abcdef",
		Peers: []Peer{
			{Key: testKey(1), Addrs: []string{"127.0.0.1:7400", "[::1]:7400"}},
			{Key: testKey(2), Addrs: []string{"node2.example:7400"}},
		},
		Credential: bytes.Repeat([]byte{0xc5}, 32),
	}
}

// encode builds ticket text around arbitrary CBOR content.
func encode(t *testing.T, v any) string {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatalf("cbor.Marshal: %v", err)
	}
	return Prefix + strings.ToLower(b32.EncodeToString(b))
}

// wire returns the sample ticket as a generic map so tests can break it.
func wire(mutate func(m map[string]any)) map[string]any {
	st := sampleTicket()
	var peers []any
	for _, p := range st.Peers {
		peers = append(peers, map[string]any{"key": p.Key[:], "addrs": p.Addrs})
	}
	m := map[string]any{"v": 1, "id": st.ClusterID, "peers": peers, "cred": st.Credential}
	if mutate != nil {
		mutate(m)
	}
	return m
}

func TestRoundTrip(t *testing.T) {
	want := sampleTicket()
	s := want.String()
	if !strings.HasPrefix(s, Prefix) {
		t.Fatalf("String() = %q, want prefix %q", s, Prefix)
	}
	if strings.ToLower(s) != s || strings.Contains(s, "=") {
		t.Errorf("String() = %q, want lowercase without padding", s)
	}
	if again := want.String(); again != s {
		t.Errorf("String() not deterministic: %q vs %q", s, again)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"as printed", s},
		{"surrounding space", "  \n" + s + "\r\n"},
		{"upper-case body", Prefix + strings.ToUpper(strings.TrimPrefix(s, Prefix))},
		{"unknown field ignored", encode(t, wire(func(m map[string]any) { m["future"] = "x" }))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse = %+v, want %+v", got, want)
			}
		})
	}
	if got := want.Peers[0].NodeAddr(); got.Key != want.Peers[0].Key || len(got.Addrs) != 2 {
		t.Errorf("NodeAddr() = %v", got)
	}
}

func TestParseErrors(t *testing.T) {
	manyPeers := func(m map[string]any) {
		var peers []any
		for i := range MaxPeers + 1 {
			peers = append(peers, map[string]any{"key": bytes.Repeat([]byte{byte(i + 1)}, 32), "addrs": []string{"h:1"}})
		}
		m["peers"] = peers
	}
	setPeer := func(p map[string]any) func(map[string]any) {
		return func(m map[string]any) { m["peers"] = []any{p} }
	}
	nineAddrs := strings.Split(strings.Repeat("h:1,", 8)+"h:1", ",")

	tests := []struct {
		name    string
		in      string
		is      error
		wantMsg string
	}{
		{"empty", "", ErrFormat, "does not start with"},
		{"wrong prefix", "birch" + strings.TrimPrefix(sampleTicket().String(), Prefix), ErrFormat, "does not start with"},
		{"bad base32", Prefix + "!!!!", ErrFormat, "bad base32"},
		{"bad cbor", Prefix + strings.ToLower(b32.EncodeToString([]byte{0xff, 0x00, 0x13})), ErrFormat, "bad CBOR"},
		{"cbor not a map", encode(t, []int{1, 2}), ErrFormat, "bad CBOR"},
		{"trailing bytes", Prefix + strings.ToLower(b32.EncodeToString(append(mustCBOR(t, wire(nil)), 0x00))), ErrFormat, "bad CBOR"},
		{"too long", Prefix + strings.Repeat("a", MaxInput), ErrFormat, "limit"},
		{"wrong version", encode(t, wire(func(m map[string]any) { m["v"] = 2 })), ErrInvalid, "version 2"},
		{"missing version", encode(t, wire(func(m map[string]any) { delete(m, "v") })), ErrInvalid, "version 0"},
		{"no peers", encode(t, wire(func(m map[string]any) { delete(m, "peers") })), ErrInvalid, "no peers"},
		{"too many peers", encode(t, wire(manyPeers)), ErrInvalid, "17 peers"},
		{"short peer key", encode(t, wire(setPeer(map[string]any{"key": []byte{1}, "addrs": []string{"h:1"}}))), ErrInvalid, "key has 1 bytes"},
		{"zero peer key", encode(t, wire(setPeer(map[string]any{"key": make([]byte, 32), "addrs": []string{"h:1"}}))), ErrInvalid, "all zeros"},
		{"peer without addrs", encode(t, wire(setPeer(map[string]any{"key": bytes.Repeat([]byte{1}, 32)}))), ErrInvalid, "no addresses"},
		{"too many addrs", encode(t, wire(setPeer(map[string]any{"key": bytes.Repeat([]byte{1}, 32), "addrs": nineAddrs}))), ErrInvalid, "9 addresses"},
		{"bad addr", encode(t, wire(setPeer(map[string]any{"key": bytes.Repeat([]byte{1}, 32), "addrs": []string{"h:0"}}))), ErrInvalid, "port 0"},
		{"missing cluster id", encode(t, wire(func(m map[string]any) { delete(m, "id") })), ErrInvalid, "missing cluster id"},
		{"cluster id too long", encode(t, wire(func(m map[string]any) { m["id"] = strings.Repeat("x", MaxClusterIDLen+1) })), ErrInvalid, "cluster id is 1025 bytes"},
		{"missing credential", encode(t, wire(func(m map[string]any) { delete(m, "cred") })), ErrInvalid, "missing credential"},
		{"credential too long", encode(t, wire(func(m map[string]any) { m["cred"] = make([]byte, MaxCredentialLen+1) })), ErrInvalid, "credential is 1025 bytes"},
		{"wrong field type", encode(t, wire(func(m map[string]any) { m["id"] = 42 })), ErrFormat, "bad CBOR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want error", got)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error = %v, want errors.Is %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatalf("cbor.Marshal: %v", err)
	}
	return b
}

func FuzzParse(f *testing.F) {
	f.Add(sampleTicket().String())
	f.Add("aspen")
	f.Add("aspenaaaa")
	f.Add(Prefix + strings.ToLower(b32.EncodeToString([]byte{0xa0})))
	f.Add(Prefix + strings.ToLower(b32.EncodeToString([]byte{0x9f, 0xff})))
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := Parse(s)
		if err != nil {
			return
		}
		if err := tk.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid ticket: %v", err)
		}
		back, err := Parse(tk.String())
		if err != nil {
			t.Fatalf("re-parse of encoded ticket: %v", err)
		}
		if !reflect.DeepEqual(back, tk) {
			t.Fatalf("round trip changed ticket: %+v vs %+v", back, tk)
		}
	})
}
