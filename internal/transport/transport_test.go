package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testALPN = "aspen/test/1"

// testTimeout bounds every blocking step of a test; failures, not sleeps.
const testTimeout = 10 * time.Second

func newIdentity(t *testing.T) Identity {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatalf("GenerateIdentity: %v", err)
	}
	return id
}

// newEndpoint starts an endpoint on loopback port 0 with the given handlers
// and closes it at the end of the test.
func newEndpoint(t *testing.T, handlers map[string]Handler) *Endpoint {
	t.Helper()
	e, err := Listen(Config{Identity: newIdentity(t)}, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	for alpn, h := range handlers {
		e.Handle(alpn, h)
	}
	e.Serve()
	return e
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// serverSide is what the echo handler saw of a connection.
type serverSide struct {
	peer     PublicKey
	exporter []byte
}

// echoHandler echoes every stream and reports each connection on seen.
func echoHandler(seen chan<- serverSide) Handler {
	return func(ctx context.Context, c *Conn) {
		exp, err := c.Exporter()
		if err != nil {
			return
		}
		select {
		case seen <- serverSide{peer: c.Peer(), exporter: exp}:
		default:
		}
		for {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(s, s)
				_ = s.Close()
			}()
		}
	}
}

func echo(t *testing.T, ctx context.Context, c *Conn, msg string) {
	t.Helper()
	s, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	if _, err := s.Write([]byte(msg)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close send side: %v", err)
	}
	_ = s.SetReadDeadline(time.Now().Add(testTimeout))
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

func TestDialEcho(t *testing.T) {
	ctx := testContext(t)
	seen := make(chan serverSide, 1)
	srv := newEndpoint(t, map[string]Handler{testALPN: echoHandler(seen)})
	cli := newEndpoint(t, nil)

	c, err := cli.Dial(ctx, srv.NodeAddr(), testALPN)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	echo(t, ctx, c, "hello over quic")

	if got, want := c.Peer(), srv.Identity().Public(); got != want {
		t.Errorf("client Peer() = %s, want %s", got, want)
	}
	if got := c.ALPN(); got != testALPN {
		t.Errorf("ALPN() = %q, want %q", got, testALPN)
	}
	var ss serverSide
	select {
	case ss = <-seen:
	case <-ctx.Done():
		t.Fatal("server handler never ran")
	}
	if want := cli.Identity().Public(); ss.peer != want {
		t.Errorf("server Peer() = %s, want %s", ss.peer, want)
	}
	exp, err := c.Exporter()
	if err != nil {
		t.Fatalf("Exporter: %v", err)
	}
	if len(exp) != 32 {
		t.Errorf("len(Exporter()) = %d, want 32", len(exp))
	}
	if !bytes.Equal(exp, ss.exporter) {
		t.Errorf("exporters differ: client %x, server %x", exp, ss.exporter)
	}
	if got, want := c.RemoteAddr().String(), srv.Addr().String(); got != want {
		t.Errorf("RemoteAddr() = %s, want %s", got, want)
	}
}

func TestDialFailures(t *testing.T) {
	srv := newEndpoint(t, map[string]Handler{testALPN: echoHandler(nil)})
	cli := newEndpoint(t, nil)
	good := srv.NodeAddr()
	wrongKey := NodeAddr{Key: newIdentity(t).Public(), Addrs: good.Addrs}

	tests := []struct {
		name string
		to   NodeAddr
		alpn string
		is   error // if set, the error must match it
	}{
		{"wrong pinned key", wrongKey, testALPN, ErrKeyMismatch},
		{"unknown alpn", good, "aspen/nope/1", nil},
		{"no addresses", NodeAddr{Key: good.Key}, testALPN, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cli.Dial(testContext(t), tt.to, tt.alpn)
			if err == nil {
				t.Fatalf("Dial succeeded with peer %s, want error", c.Peer())
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Dial error = %v, want errors.Is %v", err, tt.is)
			}
		})
	}
	// A failed dial must not poison the cache for a good one.
	c, err := cli.Dial(testContext(t), good, testALPN)
	if err != nil {
		t.Fatalf("Dial after failures: %v", err)
	}
	echo(t, testContext(t), c, "still works")
}

func TestDialReuse(t *testing.T) {
	ctx := testContext(t)
	srv := newEndpoint(t, map[string]Handler{testALPN: echoHandler(nil), "aspen/other/1": echoHandler(nil)})
	cli := newEndpoint(t, nil)

	c1, err := cli.Dial(ctx, srv.NodeAddr(), testALPN)
	if err != nil {
		t.Fatalf("Dial 1: %v", err)
	}
	c2, err := cli.Dial(ctx, srv.NodeAddr(), testALPN)
	if err != nil {
		t.Fatalf("Dial 2: %v", err)
	}
	if c1 != c2 {
		t.Error("second Dial did not reuse the live connection")
	}
	other, err := cli.Dial(ctx, srv.NodeAddr(), "aspen/other/1")
	if err != nil {
		t.Fatalf("Dial other ALPN: %v", err)
	}
	if other == c1 {
		t.Error("different ALPNs share a connection")
	}

	if err := c1.Close(0, "test"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-c1.Context().Done()
	c3, err := cli.Dial(ctx, srv.NodeAddr(), testALPN)
	if err != nil {
		t.Fatalf("Dial after close: %v", err)
	}
	if c3 == c1 {
		t.Fatal("Dial returned the closed connection")
	}
	echo(t, ctx, c3, "redialed")
}

func TestCloseIdempotent(t *testing.T) {
	ctx := testContext(t)
	srv := newEndpoint(t, map[string]Handler{testALPN: echoHandler(nil)})
	cli, err := Listen(Config{Identity: newIdentity(t)}, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	c, err := cli.Dial(ctx, srv.NodeAddr(), testALPN)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	for i := range 2 {
		if err := cli.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	select {
	case <-c.Context().Done():
	case <-ctx.Done():
		t.Fatal("dialed connection still open after Close")
	}
	if _, err := cli.Dial(ctx, srv.NodeAddr(), testALPN); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close error = %v, want net.ErrClosed", err)
	}
	// Closing the server with a live handler blocked in AcceptStream must
	// return: handlers see their context cancelled.
	if err := srv.Close(); err != nil {
		t.Fatalf("server Close: %v", err)
	}
}

func TestHandlerContextCancelledOnClose(t *testing.T) {
	ctx := testContext(t)
	entered := make(chan struct{})
	exited := make(chan struct{})
	srv, err := Listen(Config{Identity: newIdentity(t)}, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	srv.Handle(testALPN, func(hctx context.Context, c *Conn) {
		close(entered)
		<-hctx.Done()
		close(exited)
	})
	srv.Serve()
	cli := newEndpoint(t, nil)
	if _, err := cli.Dial(ctx, srv.NodeAddr(), testALPN); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("handler never ran")
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-exited:
	default:
		t.Fatal("Close returned before the handler did")
	}
}

func TestNodeAddrOfEndpoint(t *testing.T) {
	e := newEndpoint(t, nil)
	a := e.NodeAddr()
	if a.Key != e.Identity().Public() {
		t.Errorf("NodeAddr key = %s, want %s", a.Key, e.Identity().Public())
	}
	if e.Addr().Port == 0 {
		t.Error("Addr() port is 0, want the bound port")
	}
	back, err := ParseNodeAddr(a.String())
	if err != nil {
		t.Fatalf("ParseNodeAddr(%q): %v", a, err)
	}
	if back.String() != a.String() {
		t.Errorf("round trip = %q, want %q", back, a)
	}
}

func TestListenRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no identity", Config{}},
		{"bad bind", Config{Identity: newIdentity(t), Bind: "not an address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Listen(tt.cfg, nil)
			if err == nil {
				_ = e.Close()
				t.Fatal("Listen succeeded, want error")
			}
		})
	}
}

func TestLoadOrCreateIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	id1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %o, want 600", got)
	}
	id2, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if id1.Public() != id2.Public() {
		t.Errorf("reloaded key %s, want %s", id2.Public(), id1.Public())
	}

	corrupt := filepath.Join(t.TempDir(), "node.key")
	if err := os.WriteFile(corrupt, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(corrupt); err == nil {
		t.Error("corrupt identity file accepted")
	}
	if _, err := LoadOrCreateIdentity(filepath.Join(t.TempDir(), "missing-dir", "node.key")); err == nil {
		t.Error("identity created in a missing directory")
	}
}

func TestIdentityFromHex(t *testing.T) {
	seed := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{"valid", seed, false},
		{"valid upper case with newline", strings.ToUpper(seed) + "\n", false},
		{"empty", "", true},
		{"too short", seed[:62], true},
		{"too long", seed + "ab", true},
		{"not hex", strings.Repeat("zz", 32), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := IdentityFromHex(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("IdentityFromHex error = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && id.Public().IsZero() {
				t.Error("public key is zero")
			}
		})
	}
	a, _ := IdentityFromHex(seed)
	b, _ := IdentityFromHex(strings.ToUpper(seed))
	if a.Public() != b.Public() {
		t.Error("same seed gave different keys")
	}
}

func TestParseNodeAddr(t *testing.T) {
	key := strings.Repeat("0f", 32)
	tests := []struct {
		name      string
		in        string
		wantAddrs []string
		wantErr   string // substring of the error; "" means success
	}{
		{"one ipv4", key + "@127.0.0.1:7400", []string{"127.0.0.1:7400"}, ""},
		{"ipv6 and dns", key + "@[::1]:7400,node1.example:7401", []string{"[::1]:7400", "node1.example:7401"}, ""},
		{"spaces trimmed", "  " + key + "@10.0.0.1:1 , 10.0.0.2:65535\n", []string{"10.0.0.1:1", "10.0.0.2:65535"}, ""},
		{"upper-case key", strings.ToUpper(key) + "@h:1", []string{"h:1"}, ""},
		{"eight addrs", key + "@" + strings.Repeat("h:1,", 7) + "h:1", []string{"h:1", "h:1", "h:1", "h:1", "h:1", "h:1", "h:1", "h:1"}, ""},
		{"missing at", key, nil, "expected KEY@HOST:PORT"},
		{"empty", "", nil, "expected KEY@HOST:PORT"},
		{"short key", "abcd@h:1", nil, "hex characters"},
		{"non-hex key", strings.Repeat("zz", 32) + "@h:1", nil, "not hex"},
		{"zero key", strings.Repeat("00", 32) + "@h:1", nil, "all zeros"},
		{"no addresses", key + "@", nil, "no addresses"},
		{"empty address in list", key + "@h:1,", nil, "not host:port"},
		{"no port", key + "@127.0.0.1", nil, "not host:port"},
		{"empty host", key + "@:7400", nil, "empty host"},
		{"port zero", key + "@h:0", nil, "port 0"},
		{"port too big", key + "@h:65536", nil, "1..65535"},
		{"port not a number", key + "@h:http", nil, "1..65535"},
		{"unbracketed ipv6", key + "@::1:7400", nil, "not host:port"},
		{"nine addrs", key + "@" + strings.Repeat("h:1,", 8) + "h:1", nil, "more than 8"},
		{"double at", key + "@h@x:1", nil, "invalid host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNodeAddr(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseNodeAddr(%q) = %v, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %q, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNodeAddr(%q): %v", tt.in, err)
			}
			if got.Key.String() != key {
				t.Errorf("key = %s, want %s", got.Key, key)
			}
			if strings.Join(got.Addrs, " ") != strings.Join(tt.wantAddrs, " ") {
				t.Errorf("addrs = %q, want %q", got.Addrs, tt.wantAddrs)
			}
			back, err := ParseNodeAddr(got.String())
			if err != nil || back.String() != got.String() {
				t.Errorf("round trip of %q = %q, %v", got, back, err)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	id := newIdentity(t)
	s := id.Public().String()
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 64 lowercase hex characters", s)
	}
	got, err := ParsePublicKey(s)
	if err != nil || got != id.Public() {
		t.Fatalf("ParsePublicKey(%q) = %s, %v", s, got, err)
	}
	for _, bad := range []string{"", "00", s + "00", strings.Repeat("g", 64)} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) succeeded, want error", bad)
		}
	}
}

func FuzzParseNodeAddr(f *testing.F) {
	key := strings.Repeat("0f", 32)
	f.Add(key + "@127.0.0.1:7400")
	f.Add(key + "@[::1]:7400,example.com:1")
	f.Add("@")
	f.Add(key + "@h:0")
	f.Add(key + "@" + strings.Repeat("h:1,", 9))
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseNodeAddr(s)
		if err != nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("parsed %q but Validate fails: %v", s, err)
		}
		back, err := ParseNodeAddr(a.String())
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", a.String(), s, err)
		}
		if back.String() != a.String() {
			t.Fatalf("round trip %q != %q", back.String(), a.String())
		}
	})
}
