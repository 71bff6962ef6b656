package node

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/hooks"
	"github.com/aspen-dev/aspen/internal/transport"
)

// Config is everything a node needs to start. Fill it from flags, ASPEN_*
// environment variables and a TOML file (in that order of precedence) over
// DefaultConfig, then Validate.
type Config struct {
	NodeID    uint64 `toml:"node_id"`    // Raft ID of this node, > 0, unique in the cluster
	Cookie    string `toml:"cookie"`     // shared cluster secret; never empty
	DataDir   string `toml:"data_dir"`   // holds node.key, state.db, raft/ and cluster-ticket.txt
	Bind      string `toml:"bind"`       // UDP host:port of the QUIC endpoint (default 127.0.0.1:4701)
	Advertise string `toml:"advertise"`  // host:port peers and clients use; default: the bound address
	SecretKey string `toml:"secret_key"` // hex Ed25519 seed; default: generated once into node.key
	HTTPAddr  string `toml:"http_addr"`  // optional TCP host:port for /metrics, /healthz and the JSON gateway
	Join      string `toml:"join"`       // cluster ticket to join as a learner, promoted once caught up

	// Raft timing, in milliseconds (0 = default: 500 / 500).
	HeartbeatTimeoutMs int `toml:"heartbeat_timeout_ms"`
	ElectionTimeoutMs  int `toml:"election_timeout_ms"`
	// Snapshot policy (0 = default: 8192 entries / keep 10240 trailing entries).
	SnapshotThreshold uint64 `toml:"snapshot_threshold"`
	TrailingLogs      uint64 `toml:"trailing_logs"`
	// WALSegmentSize is the size of one Raft log segment file in bytes
	// (0 = 64 MiB); compaction after a snapshot frees whole segments.
	WALSegmentSize int `toml:"wal_segment_size"`

	// RestoreFrom starts a new single-voter cluster from a backup file made
	// by `aspen-cli cluster backup`. DataDir must be empty.
	RestoreFrom string `toml:"restore_from"`
	// Init bootstraps a single-voter cluster at start if none exists (dev mode).
	Init bool `toml:"init"`

	// Hooks are event handlers declared in the config file ([[hooks]]
	// tables, see package hooks); the leader stores each in the cluster
	// unless one of the same name exists.
	Hooks []api.HookHandler `toml:"hooks"`

	// Faults injects network faults into the node's endpoint. For
	// fault-injection tests only (see package faults); not settable from
	// flags or TOML; nil in production.
	Faults transport.Faults `toml:"-"`

	// Clock is the wall clock the node stamps commands and time-based
	// reads (TTLs, lock and lease deadlines) with; nil means time.Now.
	// For clock-jump tests only (see faults.Clock); not settable from flags
	// or TOML.
	Clock func() time.Time `toml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Bind: "127.0.0.1:4701"}
}

// UnsafeCookie is a placeholder cookie from examples that must never be used.
const UnsafeCookie = "aspen-cookie-UNSAFE-CHANGE-ME"

// Validate reports the first invalid setting, naming its flag.
func (c *Config) Validate() error {
	switch {
	case c.NodeID == 0:
		return errors.New("--node-id is required and must be > 0")
	case c.Cookie == "":
		return errors.New("--cookie is required: it is the shared secret of the cluster")
	case c.Cookie == UnsafeCookie:
		return fmt.Errorf("--cookie %q is the documented placeholder; choose a secret of your own", UnsafeCookie)
	case c.DataDir == "":
		return errors.New("--data-dir is required")
	case c.HeartbeatTimeoutMs < 0 || c.ElectionTimeoutMs < 0:
		return errors.New("--heartbeat-timeout-ms and --election-timeout-ms must be >= 0")
	case c.Join != "" && c.Init:
		return errors.New("--join and --init are mutually exclusive")
	case c.Join != "" && c.RestoreFrom != "":
		return errors.New("--join and --restore-from are mutually exclusive")
	}
	if err := hooks.ValidateAll(c.Hooks); err != nil {
		return fmt.Errorf("[[hooks]]: %w", err)
	}
	if _, _, err := net.SplitHostPort(c.Bind); err != nil {
		return fmt.Errorf("--bind %q: expected HOST:PORT: %w", c.Bind, err)
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("--advertise %q: expected HOST:PORT: %w", c.Advertise, err)
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return fmt.Errorf("--http-addr %q: expected HOST:PORT: %w", c.HTTPAddr, err)
		}
	}
	return nil
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }
