// Package proctest runs a cluster of real aspen-node processes on loopback
// for process-level fault injection: it builds aspen-node once, starts N
// processes with their own data dirs and UDP ports, forms the cluster the
// way an operator does (init on node 1, add-learner, change-membership;
// see scripts/cluster-demo.sh), and can SIGKILL, SIGSTOP/SIGCONT and
// restart any node on its data dir and port.
//
// Threads: one goroutine owns a Cluster (starts, kills, pauses); Client and
// the clients it returns may be used from any goroutine.
package proctest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/ticket"
)

// Build compiles aspen-node into dir and returns the binary's path. It
// runs `go build` in the module that contains this package. When
// $ASPEN_NODE_BIN is set, Build returns that binary instead.
func Build(dir string) (string, error) {
	if bin := os.Getenv("ASPEN_NODE_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("proctest: $ASPEN_NODE_BIN: %w", err)
		}
		return bin, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "aspen-node")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/aspen-node")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("proctest: go build ./cmd/aspen-node: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot is the directory of the main module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("proctest: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("proctest: not inside a Go module; run from the aspen checkout")
	}
	return filepath.Dir(mod), nil
}

// Options describe a process cluster. Zero values take the defaults noted.
type Options struct {
	Nodes int    // cluster size (default 3)
	Bin   string // aspen-node binary (from Build); required
	Dir   string // root of the data dirs and node logs; required
	// ElectionTimeoutMs is passed to every node (0: the node's default).
	ElectionTimeoutMs int
	// Logf, when set, receives one line per process event.
	Logf func(format string, args ...any)
}

// Cluster is a running set of aspen-node processes.
type Cluster struct {
	opts    Options
	cookie  string
	Members []*Member
}

// Member is one node slot; its ID, data dir and port survive restarts.
type Member struct {
	ID     uint64
	Dir    string // data dir
	Port   int    // UDP port on 127.0.0.1
	Log    string // the node's stdout and stderr, appended across restarts
	Ticket string // the ticket naming this node only (written at first start)
	Key    string // endpoint ID (hex public key)
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	paused bool
}

// Running reports whether the member's process is up (possibly paused).
func (m *Member) Running() bool { return m.cmd != nil }

// Paused reports whether the member's process is stopped by SIGSTOP.
func (m *Member) Paused() bool { return m.paused }

// Pid is the member's process ID, 0 when it is not running.
func (m *Member) Pid() int {
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// callTimeout bounds one harness call (health, metrics, membership).
const callTimeout = 5 * time.Second

// Start starts the processes and forms a cluster of opts.Nodes voters.
// On error every process already started is killed.
func Start(opts Options) (_ *Cluster, err error) {
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.Bin == "" || opts.Dir == "" {
		return nil, errors.New("proctest: Options.Bin and Options.Dir are required")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	c := &Cluster{opts: opts, cookie: fmt.Sprintf("proctest-%d", time.Now().UnixNano())}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for i := 1; i <= opts.Nodes; i++ {
		port, err := freeUDPPort()
		if err != nil {
			return nil, err
		}
		c.Members = append(c.Members, &Member{
			ID: uint64(i), Dir: filepath.Join(opts.Dir, fmt.Sprintf("n%d", i)), Port: port,
			Log: filepath.Join(opts.Dir, fmt.Sprintf("n%d.log", i)),
		})
		if err := c.Restart(i); err != nil {
			return nil, err
		}
	}
	for i, m := range c.Members {
		if err := c.waitTicket(m); err != nil {
			return nil, err
		}
		h, err := c.health(i + 1)
		if err != nil {
			return nil, fmt.Errorf("proctest: node %d health: %w", m.ID, err)
		}
		m.Key = h.EndpointID
	}
	if err := c.form(); err != nil {
		return nil, err
	}
	return c, c.WaitLeader(30 * time.Second)
}

// form initializes node 1 and makes every node a voter.
func (c *Cluster) form() error {
	cl, err := c.Client(1)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.Init(ctx); err != nil {
		return fmt.Errorf("proctest: init: %w", err)
	}
	var voters []uint64
	for _, m := range c.Members {
		voters = append(voters, m.ID)
		if m.ID == 1 {
			continue
		}
		addr := fmt.Sprintf("%s@127.0.0.1:%d", m.Key, m.Port)
		if _, err := cl.AddLearner(ctx, &api.AddLearnerRequest{NodeID: m.ID, Addr: addr}); err != nil {
			return fmt.Errorf("proctest: add-learner %d: %w", m.ID, err)
		}
	}
	if len(voters) > 1 {
		if _, err := cl.ChangeMembership(ctx, &api.ChangeMembershipRequest{Voters: voters}); err != nil {
			return fmt.Errorf("proctest: change-membership: %w", err)
		}
	}
	return nil
}

// freeUDPPort finds a UDP port on 127.0.0.1 that nothing is bound to now.
func freeUDPPort() (int, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("proctest: finding a free UDP port: %w", err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port, nil
}

// waitTicket waits for the ticket file the node writes at its first start.
func (c *Cluster) waitTicket(m *Member) error {
	path := filepath.Join(m.Dir, "cluster-ticket.txt")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && len(strings.TrimSpace(string(b))) > 0 {
			m.Ticket = strings.TrimSpace(string(b))
			return nil
		}
		select {
		case <-m.exited:
			return fmt.Errorf("proctest: node %d exited before writing its ticket; see %s", m.ID, m.Log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proctest: node %d wrote no ticket in 30s; see %s", m.ID, m.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts member i (1-based) on its data dir and port; it must not
// be running.
func (c *Cluster) Restart(i int) error {
	m := c.Members[i-1]
	if m.cmd != nil {
		return fmt.Errorf("proctest: node %d is already running", m.ID)
	}
	args := []string{"--node-id", fmt.Sprint(m.ID), "--cookie", c.cookie, "--data-dir", m.Dir,
		"--bind", fmt.Sprintf("127.0.0.1:%d", m.Port), "--log-level", "warn"}
	if c.opts.ElectionTimeoutMs > 0 {
		args = append(args, "--election-timeout-ms", fmt.Sprint(c.opts.ElectionTimeoutMs))
	}
	logf, err := os.OpenFile(m.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("proctest: node %d log: %w", m.ID, err)
	}
	cmd := exec.Command(c.opts.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("proctest: starting node %d: %w", m.ID, err)
	}
	m.cmd, m.exited, m.paused = cmd, make(chan struct{}), false
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}(m.exited)
	c.opts.Logf("node %d started, pid %d", m.ID, cmd.Process.Pid)
	return nil
}

// Kill sends SIGKILL to member i and waits for it to exit.
func (c *Cluster) Kill(i int) error {
	m := c.Members[i-1]
	if m.cmd == nil {
		return nil
	}
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("proctest: kill -9 node %d: %w", m.ID, err)
	}
	<-m.exited
	c.opts.Logf("node %d killed (SIGKILL), pid %d", m.ID, m.cmd.Process.Pid)
	m.cmd, m.paused = nil, false
	return nil
}

// Pause sends SIGSTOP to member i.
func (c *Cluster) Pause(i int) error { return c.signal(i, syscall.SIGSTOP, true) }

// Resume sends SIGCONT to member i.
func (c *Cluster) Resume(i int) error { return c.signal(i, syscall.SIGCONT, false) }

func (c *Cluster) signal(i int, sig syscall.Signal, paused bool) error {
	m := c.Members[i-1]
	if m.cmd == nil {
		return fmt.Errorf("proctest: %v node %d: not running", sig, m.ID)
	}
	if err := m.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("proctest: %v node %d: %w", sig, m.ID, err)
	}
	m.paused = paused
	c.opts.Logf("node %d: %v", m.ID, sig)
	return nil
}

// Close kills every process (resuming paused ones is not needed for
// SIGKILL).
func (c *Cluster) Close() {
	for i := range c.Members {
		_ = c.Kill(i + 1)
	}
}

// Ticket is a ticket naming the given members (every member when none).
func (c *Cluster) Ticket(members ...int) (string, error) {
	if len(members) == 0 {
		for i := range c.Members {
			members = append(members, i+1)
		}
	}
	var tk ticket.Ticket
	for _, i := range members {
		t, err := ticket.Parse(c.Members[i-1].Ticket)
		if err != nil {
			return "", fmt.Errorf("proctest: node %d ticket: %w", i, err)
		}
		tk.ClusterID, tk.Credential = t.ClusterID, t.Credential
		tk.Peers = append(tk.Peers, t.Peers[0])
	}
	return tk.String(), nil
}

// Client returns a client that knows the given members (all when none),
// trying them in that order. The caller closes it.
func (c *Cluster) Client(members ...int) (*client.Client, error) {
	tk, err := c.Ticket(members...)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(client.Config{Ticket: tk, Timeout: 20 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("proctest: client: %w", err)
	}
	return cl, nil
}

// health asks member i alone for its health.
func (c *Cluster) health(i int) (*api.HealthResponse, error) {
	cl, err := c.Client(i)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return cl.Health(ctx)
}

// Leader returns the 1-based index of the member that says it leads among
// the running, unpaused ones, or 0.
func (c *Cluster) Leader() int {
	for i, m := range c.Members {
		if m.cmd == nil || m.paused {
			continue
		}
		cl, err := c.Client(i + 1)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := cl.Metrics(ctx)
		cancel()
		cl.Close()
		if err == nil && r.State == "Leader" {
			return i + 1
		}
	}
	return 0
}

// WaitLeader waits until every running, unpaused member names the same
// leader, itself running and not paused.
func (c *Cluster) WaitLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = c.agreedLeader(); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("proctest: no agreed leader after %v: %w", timeout, last)
}

func (c *Cluster) agreedLeader() error {
	var leader uint64
	for i, m := range c.Members {
		if m.cmd == nil || m.paused {
			continue
		}
		h, err := c.health(i + 1)
		switch {
		case err != nil:
			return fmt.Errorf("node %d: %w", m.ID, err)
		case h.LeaderID == 0:
			return fmt.Errorf("node %d knows no leader", m.ID)
		case leader != 0 && h.LeaderID != leader:
			return fmt.Errorf("node %d names leader %d, another names %d", m.ID, h.LeaderID, leader)
		}
		leader = h.LeaderID
	}
	if leader == 0 {
		return errors.New("no member is running")
	}
	for _, m := range c.Members {
		if m.ID == leader && (m.cmd == nil || m.paused) {
			return fmt.Errorf("the members name leader %d, which is not running", leader)
		}
	}
	return nil
}
