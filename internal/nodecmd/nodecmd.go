// Package nodecmd is the command line of aspen-node: it fills a node.Config
// from flags, ASPEN_* environment variables and a TOML file, starts the node
// and stops it cleanly on SIGINT or SIGTERM.
package nodecmd

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"

	"github.com/aspen-dev/aspen/internal/devmode"
	"github.com/aspen-dev/aspen/internal/node"
)

const usageHead = `aspen-node runs one node of an Aspen cluster.

Quick start (a ready single-node cluster, no setup):
  aspen-node --dev
then, in another terminal:
  aspen-cli kv set hello world

A real cluster: start each node with its own id and data dir and the same cookie,
  aspen-node --node-id 1 --cookie SECRET --data-dir /var/lib/aspen --bind 10.0.0.1:4701
initialize the first with "aspen-cli cluster init", and join the others with
  aspen-node ... --join "$(cat /var/lib/aspen/cluster-ticket.txt)"
or explicitly with "aspen-cli cluster add-learner" and "cluster change-membership".

Settings come from flags, then ASPEN_* environment variables (ASPEN_NODE_ID,
ASPEN_COOKIE, ASPEN_DATA_DIR, ... : the flag name upper-cased, dashes as
underscores), then the TOML file of --config (keys: node_id, cookie, data_dir,
bind, advertise, secret_key, http_addr, join, init, restore_from,
heartbeat_timeout_ms, election_timeout_ms, snapshot_threshold, trailing_logs,
wal_segment_size, and [[hooks]] tables of event handlers), then defaults.

Flags:
`

// Run runs aspen-node with args and returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	cfg, dev, logLevel, err := load(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "aspen-node: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))
	n, err := node.Start(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "aspen-node: %v\n", err)
		return 1
	}
	if dev {
		printDevBanner(stdout, cfg, n.Ticket())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	logger.Info("shutting down", "signal", s.String())
	if err := n.Close(); err != nil {
		fmt.Fprintf(stderr, "aspen-node: shutdown: %v\n", err)
		return 1
	}
	return 0
}

// load builds the configuration: defaults < file < environment < flags.
func load(args []string, stderr io.Writer) (node.Config, bool, slog.Level, error) {
	cfg := node.DefaultConfig()
	configPath := os.Getenv("ASPEN_CONFIG")
	for i, a := range args { // find --config before binding flags to file values
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			configPath = v
		} else if a == "--config" && i+1 < len(args) {
			configPath = args[i+1]
		}
	}
	if configPath != "" {
		if err := loadFile(configPath, &cfg); err != nil {
			return cfg, false, 0, err
		}
	}
	var (
		dev      bool
		verbose  bool
		logLevel = "info"
	)
	fs := pflag.NewFlagSet("aspen-node", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	fs.StringVar(&configPath, "config", configPath, "TOML configuration file")
	fs.BoolVar(&dev, "dev", false, "start a ready single-node dev cluster in "+devmode.DataDir()+" (aspen-cli finds it with no flags)")
	fs.Uint64Var(&cfg.NodeID, "node-id", cfg.NodeID, "Raft ID of this node (> 0, unique in the cluster)")
	fs.StringVar(&cfg.Cookie, "cookie", cfg.Cookie, "shared cluster secret (required; the same on every node)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the node key, Raft log, snapshots and state")
	fs.StringVar(&cfg.Bind, "bind", cfg.Bind, "UDP HOST:PORT of the QUIC endpoint")
	fs.StringVar(&cfg.Advertise, "advertise", cfg.Advertise, "HOST:PORT other nodes and clients reach this node at (default: the bound address)")
	fs.StringVar(&cfg.SecretKey, "secret-key", cfg.SecretKey, "hex Ed25519 seed of the node identity (default: generated into DATA_DIR/node.key)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "TCP HOST:PORT for /metrics, /healthz and the JSON gateway (off when empty)")
	fs.StringVar(&cfg.Join, "join", cfg.Join, "cluster ticket to join: added as a learner, promoted to voter once caught up")
	fs.BoolVar(&cfg.Init, "init", cfg.Init, "initialize a single-voter cluster at start if this node has none")
	fs.StringVar(&cfg.RestoreFrom, "restore-from", cfg.RestoreFrom, "start a new single-voter cluster from a backup file (aspen-cli cluster backup); needs an empty --data-dir")
	fs.IntVar(&cfg.HeartbeatTimeoutMs, "heartbeat-timeout-ms", cfg.HeartbeatTimeoutMs, "Raft heartbeat timeout in ms (default 500)")
	fs.IntVar(&cfg.ElectionTimeoutMs, "election-timeout-ms", cfg.ElectionTimeoutMs, "Raft election timeout in ms (default 500)")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", cfg.SnapshotThreshold, "log entries between automatic snapshots (default 8192)")
	fs.Uint64Var(&cfg.TrailingLogs, "trailing-logs", cfg.TrailingLogs, "log entries kept after a snapshot (default 10240)")
	fs.IntVar(&cfg.WALSegmentSize, "wal-segment-size", cfg.WALSegmentSize, "bytes per Raft log segment file (default 64 MiB)")
	fs.StringVar(&logLevel, "log-level", logLevel, "debug, info, warn or error")
	fs.BoolVarP(&verbose, "verbose", "v", false, "same as --log-level debug")

	var envErr error
	fs.VisitAll(func(f *pflag.Flag) {
		name := "ASPEN_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && f.Name != "config" {
			if err := fs.Set(f.Name, v); err != nil && envErr == nil {
				envErr = fmt.Errorf("%s=%q: %w", name, v, err)
			}
		}
	})
	if envErr != nil {
		return cfg, false, 0, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, false, 0, err
	}
	if fs.NArg() > 0 {
		return cfg, false, 0, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, false, 0, fmt.Errorf("--log-level %q: %w", logLevel, err)
	}
	if verbose {
		level = slog.LevelDebug
	}
	if dev {
		if err := devDefaults(&cfg, fs); err != nil {
			return cfg, false, 0, err
		}
	}
	return cfg, dev, level, cfg.Validate()
}

func loadFile(path string, cfg *node.Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) {
			return fmt.Errorf("--config %s: unknown setting:\n%s", path, sm.String())
		}
		return fmt.Errorf("--config %s: %w", path, err)
	}
	return nil
}

// devDefaults fills what --dev implies unless set explicitly: node 1, the
// dev data dir, a cookie generated once and kept there, loopback on a free
// port, and initialization at start.
func devDefaults(cfg *node.Config, fs *pflag.FlagSet) error {
	if cfg.NodeID == 0 {
		cfg.NodeID = 1
	}
	if cfg.DataDir == "" {
		cfg.DataDir = devmode.DataDir()
	}
	if !fs.Changed("bind") && os.Getenv("ASPEN_BIND") == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	cfg.Init = true
	if cfg.Cookie != "" {
		return nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("--dev: %w", err)
	}
	path := filepath.Join(cfg.DataDir, "dev-cookie")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		buf := make([]byte, 16)
		if _, err := rand.Read(buf); err != nil {
			return err
		}
		b = []byte(hex.EncodeToString(buf))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return fmt.Errorf("--dev: writing cookie: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("--dev: reading cookie: %w", err)
	}
	cfg.Cookie = strings.TrimSpace(string(b))
	return nil
}

func printDevBanner(w io.Writer, cfg node.Config, ticket string) {
	fmt.Fprintf(w, `Aspen dev node is ready (node %d, data in %s).

Cluster ticket (also in %s):
  %s

Try, in another terminal:
  aspen-cli kv set hello world
  aspen-cli kv get hello
  aspen-cli cluster status

Stop with Ctrl-C.
`, cfg.NodeID, cfg.DataDir, filepath.Join(cfg.DataDir, node.TicketFile), ticket)
}
