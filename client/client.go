// Package client is the Go client of an Aspen cluster: it dials a cluster
// ticket and calls typed key/value and cluster operations, rotating through
// the ticket's nodes and following the leader, within context deadlines.
//
//	c, err := client.New(client.Config{Ticket: t})
//	defer c.Close()
//	_, err = c.Put(ctx, &api.PutRequest{Key: []byte("hello"), Value: []byte("world")})
//
// A Client is safe for concurrent use; it keeps one QUIC connection per node.
// Errors from the cluster are *api.Error values: test them with errors.Is
// against api.ErrNotFound, api.ErrNotInitialized, and so on.
package client

import (
	"log/slog"
	"time"
)

// Config configures a Client.
type Config struct {
	// Ticket is the cluster ticket ("aspen…"). Required.
	Ticket string
	// Timeout bounds each call whose context has no deadline (default 30s).
	Timeout time.Duration
	// Logger receives retry and connection logs (default: discard).
	Logger *slog.Logger
}
