package node_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/blob"
	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/ticket"
)

// TestBlobTicketCapability: a blob ticket issued by one node downloads its
// blob from the holders, and its capability admits nothing else: not
// another blob, not key/value operations, not after it expired, not when
// forged.
func TestBlobTicketCapability(t *testing.T) {
	c := clustertest.New(t, 3, clustertest.Options{})
	data := randomBlob(5, 100<<10)
	h := addBlob(t, c.Client(2), data)
	other := addBlob(t, c.Client(2), []byte("another blob"))
	tk, err := c.Client(1).BlobTicket(ctxT(t), h, time.Hour)
	if err != nil {
		t.Fatalf("BlobTicket: %v", err)
	}
	bt, err := blob.ParseTicket(tk)
	if err != nil || bt.ExpiresMs <= time.Now().UnixMilli() {
		t.Fatalf("ParseTicket = %+v, %v; want an expiry in the future", bt, err)
	}
	cfg := client.Config{Timeout: 10 * time.Second}
	download := func(tk string) ([]byte, error) {
		var out bytes.Buffer
		_, _, err := client.BlobDownload(ctxT(t), cfg, tk, &out)
		return out.Bytes(), err
	}
	var out bytes.Buffer
	got, n, err := client.BlobDownload(ctxT(t), cfg, tk, &out)
	if err != nil || got != h || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("BlobDownload = %s, %d, %v (bytes equal %v); want the blob", got, n, err, bytes.Equal(out.Bytes(), data))
	}

	// The same token with another hash.
	forOther := bt
	forOther.Hash, _ = blob.ParseHash(other)
	if _, err := download(forOther.String()); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("download of another blob with the ticket's token: err = %v; want UNAUTHORIZED", err)
	}
	// A forged token.
	forged := bt
	forged.Token = bytes.Clone(bt.Token)
	forged.Token[0] ^= 1
	if _, err := download(forged.String()); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("download with a forged token: err = %v; want UNAUTHORIZED", err)
	}
	// A later expiry than the one signed.
	extended := bt
	extended.ExpiresMs += 1000
	if _, err := download(extended.String()); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("download with an extended expiry: err = %v; want UNAUTHORIZED", err)
	}
	// The token as a cluster credential, for key/value operations.
	ct := ticket.Ticket{ClusterID: bt.ClusterID, Credential: bt.Token}
	for _, p := range bt.Peers {
		ct.Peers = append(ct.Peers, ticket.Peer{Key: p.Key, Addrs: p.Addrs})
	}
	kvc, err := client.New(client.Config{Ticket: ct.String(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer kvc.Close()
	if _, err := kvc.Get(ctxT(t), &api.GetRequest{Key: []byte("k")}); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("kv get with the ticket's token as credential: err = %v; want UNAUTHORIZED", err)
	}
	if _, err := kvc.Put(ctxT(t), &api.PutRequest{Key: []byte("k"), Value: []byte("v")}); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("kv put with the ticket's token as credential: err = %v; want UNAUTHORIZED", err)
	}
	if _, err := kvc.BlobAdd(ctxT(t), strings.NewReader("x")); !errors.Is(err, api.ErrUnauthorized) {
		t.Errorf("blob add with the ticket's token as credential: err = %v; want UNAUTHORIZED", err)
	}

	// A ticket that expires.
	short, err := c.Client(1).BlobTicket(ctxT(t), h, time.Millisecond)
	if err != nil {
		t.Fatalf("BlobTicket(1ms): %v", err)
	}
	sbt, err := blob.ParseTicket(short)
	if err != nil {
		t.Fatal(err)
	}
	c.Eventually(5*time.Second, func() error {
		if now := time.Now().UnixMilli(); now <= sbt.ExpiresMs {
			return errors.New("ticket not expired yet")
		}
		return nil
	})
	if _, err := download(short); !errors.Is(err, api.ErrUnauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("download with an expired ticket: err = %v; want UNAUTHORIZED saying it expired", err)
	}
	if tk, err := c.Client(1).BlobTicket(ctxT(t), h, time.Microsecond); err != nil {
		t.Errorf("BlobTicket(1µs) err = %v", err)
	} else if bt, err := blob.ParseTicket(tk); err != nil || bt.ExpiresMs == 0 {
		t.Errorf("BlobTicket(1µs) = %+v, %v; want an expiry, not none", bt, err)
	}
	if _, err := c.Client(1).BlobTicket(ctxT(t), h, -time.Second); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("BlobTicket(negative lifetime) err = %v; want INVALID_ARGUMENT", err)
	}
	if _, err := c.Client(1).BlobTicket(ctxT(t), strings.Repeat("0", 64), 0); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("BlobTicket(unknown blob) err = %v; want NOT_FOUND", err)
	}
}
