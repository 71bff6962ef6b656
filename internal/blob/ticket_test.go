package blob

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/transport"
)

func TestTicketRoundTrip(t *testing.T) {
	peer, err := transport.ParseNodeAddr(strings.Repeat("ab", 32) + "@127.0.0.1:4701,[::1]:4701")
	if err != nil {
		t.Fatal(err)
	}
	h := Sum([]byte("x"))
	in := Ticket{Hash: h, ClusterID: "c1", Peers: []transport.NodeAddr{peer}, ExpiresMs: 1234, Token: ReadCapability([]byte("k"), h, 1234)}
	s := in.String()
	if !strings.HasPrefix(s, TicketPrefix) || strings.ToLower(s) != s {
		t.Fatalf("ticket %q: want lowercase with prefix %q", s, TicketPrefix)
	}
	out, err := ParseTicket("  " + strings.ToUpper(s[:len(TicketPrefix)]) + s[len(TicketPrefix):] + "\n")
	if err == nil {
		t.Fatalf("ParseTicket accepted an upper-case prefix: %+v", out)
	}
	out, err = ParseTicket(" " + s + "\n")
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("ParseTicket = %+v, %v; want %+v", out, err, in)
	}
	encode := func(w wireTicket) string {
		b, _ := cbor.Marshal(w)
		return TicketPrefix + strings.ToLower(ticketEncoding.EncodeToString(b))
	}
	good := wireTicket{Version: ticketVersion, Hash: h[:], ClusterID: "c1", Peers: []string{peer.String()}, Token: in.Token}
	bad := map[string]func(w *wireTicket){
		"version 1":  func(w *wireTicket) { w.Version = 1 },
		"short hash": func(w *wireTicket) { w.Hash = w.Hash[:5] },
		"no cluster": func(w *wireTicket) { w.ClusterID = "" },
		"no peers":   func(w *wireTicket) { w.Peers = nil },
		"bad peer":   func(w *wireTicket) { w.Peers = []string{"nokey"} },
		"no token":   func(w *wireTicket) { w.Token = nil },
		"negative":   func(w *wireTicket) { w.ExpiresMs = -1 },
	}
	if _, err := ParseTicket(encode(good)); err != nil {
		t.Fatalf("ParseTicket(good) = %v", err)
	}
	for name, edit := range bad {
		w := good
		edit(&w)
		if _, err := ParseTicket(encode(w)); !errors.Is(err, ErrBadTicket) {
			t.Errorf("%s: ParseTicket err = %v; want ErrBadTicket", name, err)
		}
	}
	for _, bad := range []string{"", "aspen", TicketPrefix, TicketPrefix + "!!", TicketPrefix + "aaaa", s[:len(s)-3]} {
		if _, err := ParseTicket(bad); !errors.Is(err, ErrBadTicket) {
			t.Errorf("ParseTicket(%q) err = %v; want ErrBadTicket", bad, err)
		}
	}
}

// TestTransferReadCapability: a blob ticket's token admits a get of its
// blob, and nothing else: not another blob, not a put, not as a cluster
// credential, not after it expired, not with a changed expiry, not forged.
func TestTransferReadCapability(t *testing.T) {
	cred, key := []byte("client-credential"), []byte("capability-key")
	s := newStore(t)
	conn, proof := pair(t, &Server{Store: s, Credentials: [][]byte{cred}, CapabilityKey: key}, cred)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exp, err := conn.Exporter()
	if err != nil {
		t.Fatal(err)
	}
	data, other := randBytes(window+9, 6), []byte("another blob")
	for _, d := range [][]byte{data, other} {
		if _, err := Put(ctx, conn, proof, bytes.NewReader(d), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	h := Sum(data)
	capGet := func(target Hash, token []byte, expiresMs int64) ([]byte, error) {
		var out bytes.Buffer
		_, err := Get(ctx, conn, GetRequest{Hash: target, Length: -1, Proof: auth.Proof(token, exp), ReadCap: true, ExpiresMs: expiresMs}, &out)
		return out.Bytes(), err
	}

	forever := ReadCapability(key, h, 0)
	if got, err := capGet(h, forever, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get with a ticket token = %d bytes, %v; want the blob", len(got), err)
	}
	later := time.Now().Add(time.Hour).UnixMilli()
	if got, err := capGet(h, ReadCapability(key, h, later), later); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get with an unexpired token = %d bytes, %v; want the blob", len(got), err)
	}
	past := time.Now().Add(-time.Second).UnixMilli()
	expired := ReadCapability(key, h, past)
	_, err = capGet(h, expired, past)
	if !errors.Is(err, api.ErrUnauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("get with an expired token err = %v; want UNAUTHORIZED saying it expired", err)
	}
	refused := map[string]func() error{
		"another blob": func() error { _, err := capGet(Sum(other), forever, 0); return err },
		"later expiry": func() error { _, err := capGet(h, expired, later); return err },
		"forged":       func() error { _, err := capGet(h, bytes.Repeat([]byte{1}, auth.ProofLen), 0); return err },
		"other key":    func() error { _, err := capGet(h, ReadCapability([]byte("k2"), h, 0), 0); return err },
		"as credential": func() error {
			_, err := Get(ctx, conn, GetRequest{Hash: h, Length: -1, Proof: auth.Proof(forever, exp)}, &bytes.Buffer{})
			return err
		},
		"put": func() error {
			_, err := put(ctx, conn, &TransferRequest{Op: OpPut, Auth: auth.Proof(forever, exp), Hash: h[:], ReadCap: true}, bytes.NewReader(data))
			return err
		},
	}
	for name, f := range refused {
		if err := f(); !errors.Is(err, api.ErrUnauthorized) {
			t.Errorf("%s: err = %v; want UNAUTHORIZED", name, err)
		}
	}
}
