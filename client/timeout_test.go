package client_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// TestCallTimeoutWithoutContextDeadline: Config.Timeout ends a call whose
// context has no deadline, on a node that never answers, and the next call
// on the same client still works.
func TestCallTimeoutWithoutContextDeadline(t *testing.T) {
	cred := make([]byte, 32)
	if _, err := rand.Read(cred); err != nil {
		t.Fatal(err)
	}
	var answer atomic.Bool
	reg := rpc.NewRegistry()
	rpc.Handle(reg, api.OpKVGet, func(ctx context.Context, req *api.GetRequest) (*api.GetResponse, error) {
		if answer.Load() {
			return &api.GetResponse{Revision: 7}, nil
		}
		<-ctx.Done() // silent until the server's call timeout
		return nil, ctx.Err()
	})
	srv := &rpc.Server{Registry: reg, Credential: cred, Logger: slog.New(slog.DiscardHandler)}
	id, err := transport.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := transport.Listen(transport.Config{Identity: id, Bind: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	ep.Handle(client.ALPN, func(ctx context.Context, c *transport.Conn) { srv.ServeConn(ctx, c) })
	ep.Serve()
	a := ep.NodeAddr()
	tk := ticket.Ticket{ClusterID: "test", Credential: cred, Peers: []ticket.Peer{{Key: a.Key, Addrs: a.Addrs}}}

	c, err := client.New(client.Config{Ticket: tk.String(), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Get(context.Background(), &api.GetRequest{Key: []byte("k")})
	if err == nil {
		t.Fatal("a call to a silent node succeeded")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("the call took %s; Config.Timeout is 300ms", took) // the server's own call timeout is 60s
	}
	answer.Store(true)
	got, err := c.Get(context.Background(), &api.GetRequest{Key: []byte("k")})
	if err != nil || got.Revision != 7 {
		t.Fatalf("next call = %+v, %v", got, err)
	}
}
