// Package bench is Aspen's load generator: it runs a workload (put, get,
// mixed, cas, scan, batch) from many goroutines over a few shared
// connections to a store, records every latency in a fixed-memory
// histogram, and reports throughput, percentiles and a latency timeline as
// a Result (JSON, a text table or an SVG plot).
//
// The store is reached through Conn, so the same run can target Aspen
// (AspenConn over the Go client) or, in the side-by-side harness of the
// separate bench module, etcd.
package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Conn is one connection to a store, shared by several load goroutines: its
// methods are called concurrently and must be safe for that. Errors are
// counted, not retried, by the load generator.
type Conn interface {
	// Put writes one key.
	Put(ctx context.Context, key, value []byte) error
	// Get reads one key, linearizable unless stale; a missing key is not an
	// error.
	Get(ctx context.Context, key []byte, stale bool) error
	// CAS sets key to value if it holds expected. On a conflict it returns
	// false and the current value (nil when the key is missing).
	CAS(ctx context.Context, key, expected, value []byte) (ok bool, actual []byte, err error)
	// Scan reads at most limit keys starting with prefix and returns how many.
	Scan(ctx context.Context, prefix []byte, limit int, stale bool) (int, error)
	// BatchPut writes all keys atomically, keys[i] = values[i].
	BatchPut(ctx context.Context, keys, values [][]byte) error
}

// Workload names what each operation does.
type Workload string

// The workloads.
const (
	Put   Workload = "put"   // write a random key of the key space
	Get   Workload = "get"   // read a random (preloaded) key
	Mixed Workload = "mixed" // get with probability ReadRatio, else put
	CAS   Workload = "cas"   // compare-and-swap one hot key, from the last value seen
	Scan  Workload = "scan"  // read up to 100 keys sharing a random prefix
	Batch Workload = "batch" // write 100 random keys in one atomic batch
)

// Workloads lists every workload, in the order of the help text.
var Workloads = []Workload{Put, Get, Mixed, CAS, Scan, Batch}

// BatchSize is the number of keys of a batch operation and the page size of
// a scan.
const BatchSize = 100

// Config describes one run. Zero values take the defaults of DefaultConfig
// where one exists.
type Config struct {
	Workload Workload
	// Clients is the number of goroutines issuing operations (default 16).
	Clients int
	// Connections is the number of Conns, shared round-robin by the clients
	// (default 1; at most Clients).
	Connections int
	// ValueSize is the size of written values in bytes (default 100).
	ValueSize int
	// Keys is the size of the key space (default 10000); get, scan and
	// mixed preload all of it.
	Keys int
	// Duration bounds the run (default 10s when Ops is 0).
	Duration time.Duration
	// Ops, when > 0, stops the run after this many operations.
	Ops int64
	// Rate is the target rate in operations per second over all clients;
	// 0 means no limit: each client sends its next operation as soon as the
	// last one answers. With a rate, latency is measured from the time the
	// operation was due, so a stalled server is not hidden.
	Rate float64
	// ReadRatio is the fraction of gets in the mixed workload (default 0.9).
	ReadRatio float64
	// Stale makes gets and scans stale reads instead of linearizable ones.
	Stale bool
	// Warmup is run and discarded before measuring (default 0).
	Warmup time.Duration
	// KeyPrefix starts every key (default "bench/").
	KeyPrefix string
}

// DefaultConfig returns a put workload with the defaults filled in.
func DefaultConfig() Config {
	return Config{
		Workload:    Put,
		Clients:     16,
		Connections: 1,
		ValueSize:   100,
		Keys:        10000,
		ReadRatio:   0.9,
		KeyPrefix:   "bench/",
	}
}

// withDefaults returns c with zero fields defaulted.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Workload == "" {
		c.Workload = d.Workload
	}
	if c.Clients == 0 {
		c.Clients = d.Clients
	}
	if c.Connections == 0 {
		c.Connections = d.Connections
	}
	if c.ValueSize == 0 {
		c.ValueSize = d.ValueSize
	}
	if c.Keys == 0 {
		c.Keys = d.Keys
	}
	if c.Duration == 0 && c.Ops == 0 {
		c.Duration = 10 * time.Second
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = d.KeyPrefix
	}
	c.Connections = min(c.Connections, c.Clients)
	return c
}

// Validate reports the first invalid setting, naming its flag. Run
// validates the config with its defaults filled in.
func (c Config) Validate() error {
	known := false
	for _, w := range Workloads {
		known = known || w == c.Workload
	}
	switch {
	case !known:
		return fmt.Errorf("unknown workload %q: want one of %v", c.Workload, Workloads)
	case c.Clients < 1 || c.Clients > 100000:
		return errors.New("--clients must be between 1 and 100000")
	case c.Connections < 1:
		return errors.New("--connections must be at least 1")
	case c.ValueSize < 1 || c.ValueSize > 1<<20:
		return errors.New("--value-size must be between 1 and 1048576 bytes")
	case c.Keys < 1:
		return errors.New("--keys must be at least 1")
	case c.Duration == 0 && c.Ops == 0:
		return errors.New("give --duration or --ops")
	case c.Duration < 0:
		return errors.New("--duration must be positive")
	case c.Ops < 0:
		return errors.New("--ops must be positive")
	case c.Rate < 0:
		return errors.New("--rate must be >= 0 (0: as fast as possible)")
	case c.ReadRatio < 0 || c.ReadRatio > 1:
		return errors.New("--read-ratio must be between 0 and 1")
	case c.Warmup < 0:
		return errors.New("warmup must be >= 0")
	}
	return nil
}

// Key returns key number i of the key space: the prefix and i in 8 digits,
// so keys sort numerically and the first BatchSize-aligned runs share a
// scan prefix.
func (c Config) Key(i int) []byte {
	return fmt.Appendf([]byte(c.KeyPrefix), "%08d", i)
}

// hotKey is the key of the cas workload.
func (c Config) hotKey() []byte { return []byte(c.KeyPrefix + "hot") }
