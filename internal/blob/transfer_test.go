package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/transport"
)

// pair starts a server endpoint serving srv and returns a connection to it
// and the proof of cred on that connection.
func pair(t *testing.T, srv *Server, cred []byte) (*transport.Conn, []byte) {
	t.Helper()
	sid, _ := transport.GenerateIdentity()
	se, err := transport.Listen(transport.Config{Identity: sid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	se.Handle(ALPN, func(ctx context.Context, c *transport.Conn) { srv.ServeConn(ctx, c) })
	se.Serve()
	t.Cleanup(func() { se.Close() })
	cid, _ := transport.GenerateIdentity()
	ce, err := transport.Listen(transport.Config{Identity: cid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ce.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := ce.Dial(ctx, se.NodeAddr(), ALPN)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := conn.Exporter()
	if err != nil {
		t.Fatal(err)
	}
	return conn, auth.Proof(cred, exp)
}

func TestTransferPutGet(t *testing.T) {
	cred := []byte("client-credential")
	s := newStore(t)
	var storedTags []string
	srv := &Server{Store: s, Credentials: [][]byte{cred}, Stored: func(_ context.Context, _ PutResult, tags []string) error {
		storedTags = tags
		return nil
	}}
	conn, proof := pair(t, srv, cred)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	data := randBytes(3*window+555, 4)
	res, err := Put(ctx, conn, proof, bytes.NewReader(data), nil, []string{"user:keep"})
	if err != nil || res.Hash != Sum(data) || !res.New || res.Size != int64(len(data)) {
		t.Fatalf("Put = %+v, %v", res, err)
	}
	if len(storedTags) != 1 || storedTags[0] != "user:keep" {
		t.Fatalf("tags seen by Stored = %v", storedTags)
	}
	res, err = Put(ctx, conn, proof, bytes.NewReader(data), nil, nil)
	if err != nil || res.New {
		t.Fatalf("second Put = %+v, %v; want not new", res, err)
	}

	var out bytes.Buffer
	size, err := Get(ctx, conn, GetRequest{Hash: res.Hash, Length: -1, Proof: proof}, &out)
	if err != nil || size != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("Get = %d, %v (bytes equal %v)", size, err, bytes.Equal(out.Bytes(), data))
	}
	out.Reset()
	if _, err := Get(ctx, conn, GetRequest{Hash: res.Hash, Offset: window + 3, Length: 40000, Proof: proof}, &out); err != nil || !bytes.Equal(out.Bytes(), data[window+3:window+3+40000]) {
		t.Fatalf("range Get: %v", err)
	}

	var missing Hash
	if _, err := Get(ctx, conn, GetRequest{Hash: missing, Length: -1, Proof: proof}, &out); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(missing) err = %v; want NOT_FOUND", err)
	}
	other := Sum([]byte("other"))
	if _, err := Put(ctx, conn, proof, bytes.NewReader([]byte("x")), &other, nil); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("Put with wrong expected hash err = %v; want INVALID_ARGUMENT", err)
	}
	if _, err := Get(ctx, conn, GetRequest{Hash: res.Hash, Length: -1, Proof: []byte("bad proof")}, &out); !errors.Is(err, api.ErrUnauthorized) {
		t.Fatalf("Get with bad proof err = %v; want UNAUTHORIZED", err)
	}
}

// TestTransferCorruptSource: a server whose file is corrupt refuses to send
// the damaged group, and the receiver gets an error, never wrong bytes.
func TestTransferCorruptSource(t *testing.T) {
	cred := []byte("c")
	s := newStore(t)
	conn, proof := pair(t, &Server{Store: s, Credentials: [][]byte{cred}}, cred)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := randBytes(2*window, 5)
	h, _, err := s.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, s.dataPath(h), window+10)
	var out bytes.Buffer
	if _, err := Get(ctx, conn, GetRequest{Hash: h, Length: -1, Proof: proof}, &out); err == nil {
		t.Fatal("Get of a corrupt blob succeeded")
	}
	if out.Len() > window || !bytes.Equal(out.Bytes(), data[:out.Len()]) {
		t.Fatalf("received %d bytes, not a verified prefix", out.Len())
	}
}

func TestTransferFetchHook(t *testing.T) {
	cred := []byte("c")
	s := newStore(t)
	data := []byte("fetched from a peer")
	srv := &Server{Store: s, Credentials: [][]byte{cred}, Fetch: func(ctx context.Context, h Hash) error {
		_, err := s.PutExpect(ctx, bytes.NewReader(data), &h)
		return err
	}}
	conn, proof := pair(t, srv, cred)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if _, err := Get(ctx, conn, GetRequest{Hash: Sum(data), Length: -1, Proof: proof}, &out); err != nil || out.String() != string(data) {
		t.Fatalf("Get through Fetch = %q, %v", out.String(), err)
	}
}

// TestTransferFetchFromBadPeer: a fetch that fails because a peer's copy
// is corrupt fails the get, and is not taken for a corrupt local copy.
func TestTransferFetchFromBadPeer(t *testing.T) {
	cred := []byte("c")
	corruptCalls := 0
	srv := &Server{Store: newStore(t), Credentials: [][]byte{cred},
		Fetch:   func(context.Context, Hash) error { return fmt.Errorf("node 2: %w", ErrCorrupt) },
		Corrupt: func(context.Context, Hash) error { corruptCalls++; return nil },
	}
	conn, proof := pair(t, srv, cred)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := Get(ctx, conn, GetRequest{Hash: Sum([]byte("x")), Length: -1, Proof: proof}, &bytes.Buffer{}); err == nil {
		t.Fatal("Get succeeded though the fetch failed")
	}
	if corruptCalls != 0 {
		t.Fatalf("Corrupt called %d times for a peer's bad copy; want 0", corruptCalls)
	}
}
