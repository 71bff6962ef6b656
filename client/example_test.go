package client_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/node"
)

// startExampleNode starts a single-node cluster for the example and returns
// its ticket and a stop function. Real programs get the ticket from
// `aspen-cli cluster ticket` or a node's cluster-ticket.txt.
func startExampleNode() (string, func()) {
	dir, err := os.MkdirTemp("", "aspen-example")
	if err != nil {
		log.Fatal(err)
	}
	cfg := node.DefaultConfig()
	cfg.NodeID, cfg.Cookie, cfg.DataDir, cfg.Bind, cfg.Init = 1, "example", filepath.Join(dir, "n1"), "127.0.0.1:0", true
	n, err := node.Start(cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	return n.Ticket(), func() { n.Close(); os.RemoveAll(dir) }
}

func Example() {
	ticket, stop := startExampleNode()
	defer stop()

	c, err := client.New(client.Config{Ticket: ticket, Timeout: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if _, err := c.Put(ctx, &api.PutRequest{Key: []byte("greeting"), Value: []byte("hello")}); err != nil {
		log.Fatal(err)
	}
	got, err := c.Get(ctx, &api.GetRequest{Key: []byte("greeting")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (version %d)\n", got.KV.Value, got.KV.Version)

	// Compare-and-swap: a failed comparison is an answer, not an error.
	cas, err := c.CAS(ctx, &api.CASRequest{Key: []byte("greeting"), Expected: []byte("bye"), NewValue: []byte("hi")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("swapped: %v, current: %s\n", cas.Succeeded, cas.Actual.Value)
	// Output:
	// hello (version 1)
	// swapped: false, current: hello
}
