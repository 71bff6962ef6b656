package node

import (
	"context"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/transport"
	"github.com/aspen-dev/aspen/internal/watch"
)

// startWatch serves change streams (api.ALPNWatch) from the local replica.
// It must run after the RPC server is built (it shares its client
// credential) and before n.ep.Serve(), which fixes the offered ALPNs. The
// watches run in endpoint goroutines and end when the endpoint closes.
func (n *Node) startWatch() {
	srv := &watch.Server{Store: n.store, Credential: n.server.Credential, Logger: n.log}
	n.ep.Handle(api.ALPNWatch, func(ctx context.Context, c *transport.Conn) { srv.ServeConn(ctx, c) })
}
