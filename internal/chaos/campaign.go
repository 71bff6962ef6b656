package chaos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/aspen-dev/aspen/internal/clustertest"
	"github.com/aspen-dev/aspen/internal/faults"
	"github.com/aspen-dev/aspen/internal/linearize"
)

// Campaign is a long run outside `go test`: a fresh in-process cluster,
// the register workload and atomic adds together under the nemeses, and a
// verdict on both (cmd/aspen-chaos).
type Campaign struct {
	Nodes  int    // cluster size (default 5)
	Config Config // workload and nemeses (set Config.Adders for the counter check)
	// CheckTimeout bounds the porcupine check (default 2m); past it the
	// verdict is Unknown.
	CheckTimeout time.Duration
	// OutDir receives the visualization and the seed on a violation
	// (default: a new directory under os.TempDir()).
	OutDir string
	// Process runs real aspen-node processes (package proctest) under
	// ProcessNemeses instead of an in-process cluster under
	// Config.Nemeses.
	Process        bool
	ProcessNemeses []ProcessNemesis
}

// ErrViolation is wrapped by RunCampaign's error when the history is not
// linearizable or adds were lost or applied twice.
var ErrViolation = errors.New("chaos: correctness violation")

// ErrInconclusive is wrapped by RunCampaign's error when porcupine did not
// decide within CheckTimeout.
var ErrInconclusive = errors.New("chaos: linearizability check inconclusive")

// RunCampaign starts the cluster, runs the campaign and stops the cluster.
// It returns the report and an error wrapping ErrViolation or
// ErrInconclusive (with the paths of the files written), or the harness's
// own failure (the cluster did not start or lost its leader for good).
func RunCampaign(cp Campaign) (rep Report, err error) {
	if cp.Nodes <= 0 {
		cp.Nodes = 5
	}
	if cp.CheckTimeout <= 0 {
		cp.CheckTimeout = 2 * time.Minute
	}
	cfg := cp.Config
	cfg.defaults(cp.Nodes)

	defer recoverHarness(&err)
	if cp.Process {
		rep = runProcessCampaign(cp, cfg)
		return rep, cp.verdict(rep)
	}
	t := newHarness(fmt.Sprintf("campaign-seed%d", cfg.Seed), cfg.Logf)
	defer func() {
		if cerr := t.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	c := clustertest.New(t, cp.Nodes, clustertest.Options{Net: faults.New(cfg.Seed)})
	c.WaitVoters()
	cfg.Logf("cluster of %d nodes up, leader %d", cp.Nodes, leaderIndex(c))
	rep = Run(c, cfg, cp.CheckTimeout)
	return rep, cp.verdict(rep)
}

func (cp *Campaign) verdict(rep Report) error {
	var problems []string
	switch rep.Lin.Verdict {
	case porcupine.Ok:
	case porcupine.Unknown:
		problems = append(problems, "linearizability check timed out")
	default:
		problems = append(problems, "history is not linearizable")
	}
	cerr := errors.Join(rep.CounterErr(), rep.Timed.Err())
	if cerr != nil {
		problems = append(problems, cerr.Error())
	}
	if len(problems) == 0 {
		return nil
	}
	kind := ErrViolation
	if rep.Lin.Verdict == porcupine.Unknown && cerr == nil {
		kind = ErrInconclusive
	}
	dir := cp.OutDir
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "aspen-chaos-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("%w: %v (and no directory for the evidence: %v)", kind, problems, err)
	}
	seedFile := filepath.Join(dir, "seed.txt")
	html := filepath.Join(dir, fmt.Sprintf("linearizability-seed%d.html", cp.Config.Seed))
	var werrs []error
	werrs = append(werrs, os.WriteFile(seedFile, fmt.Appendf(nil, "%d\n", cp.Config.Seed), 0o644))
	if rep.Lin.Verdict != porcupine.Ok {
		werrs = append(werrs, rep.Lin.WriteHTML(html))
	} else {
		html = "(history linearizable: none)"
	}
	return fmt.Errorf("%w: %v; seed %d in %s; visualization %s%v", kind, problems, cp.Config.Seed, seedFile, html, errors.Join(werrs...))
}

// recoverHarness turns a harnessFailure panic of the goroutine that drives
// the cluster into *err.
func recoverHarness(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(harnessFailure)
		if !ok {
			panic(r)
		}
		*err = fmt.Errorf("chaos harness: %s", string(f))
	}
}

// DescribeOp renders one recorded register operation on one line.
func DescribeOp(op porcupine.Operation) string {
	return fmt.Sprintf("client %d [%d, %d] %s", op.ClientId, op.Call, op.Return, linearize.Model.DescribeOperation(op.Input, op.Output))
}

// harness is the testing.TB that clustertest needs, for runs outside `go
// test`: Fatalf panics with a harnessFailure that RunCampaign recovers
// (only from RunCampaign's goroutine, the one that drives the cluster),
// TempDir and Cleanup are real, Logf goes to the campaign's log. Any other
// TB method panics through the nil embedded interface: clustertest does not
// use them.
type harness struct {
	testing.TB // nil: only for the unexported method
	name       string
	logf       func(string, ...any)

	mu       sync.Mutex // guards the fields below
	root     string
	dirs     int
	cleanups []func()
}

type harnessFailure string

func newHarness(name string, logf func(string, ...any)) *harness {
	return &harness{name: name, logf: logf}
}

func (h *harness) Helper()                         {}
func (h *harness) Name() string                    { return h.name }
func (h *harness) Logf(format string, args ...any) { h.logf(format, args...) }
func (h *harness) Fatalf(format string, args ...any) {
	panic(harnessFailure(fmt.Sprintf(format, args...)))
}

func (h *harness) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

func (h *harness) TempDir() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.root == "" {
		root, err := os.MkdirTemp("", "aspen-chaos-data-")
		if err != nil {
			panic(harnessFailure(fmt.Sprintf("temp dir: %v", err)))
		}
		h.root = root
	}
	h.dirs++
	dir := filepath.Join(h.root, fmt.Sprint(h.dirs))
	if err := os.Mkdir(dir, 0o755); err != nil {
		panic(harnessFailure(fmt.Sprintf("temp dir: %v", err)))
	}
	return dir
}

// cleanup runs the cleanups in reverse order, then removes the temp dirs.
func (h *harness) cleanup() error {
	h.mu.Lock()
	fs := h.cleanups
	h.cleanups = nil
	h.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
	if h.root == "" {
		return nil
	}
	return os.RemoveAll(h.root)
}

var _ testing.TB = (*harness)(nil)
