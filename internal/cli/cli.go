// Package cli owns aspen-cli: its cobra command tree, global flags, ticket
// discovery, output printers and the mapping of errors to exit codes.
//
// Run is the whole program; it keeps no package state, so tests and the
// testscript harness can call it in-process. Commands return errors (never
// exit), render their results through one printer chosen by --json, and
// exitCode turns the error into the process exit status.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/devmode"
	"github.com/aspen-dev/aspen/internal/ticket"
)

// Environment variables read by aspen-cli.
const (
	envTicket = "ASPEN_TICKET"
	envToken  = "ASPEN_TOKEN"
)

// defaultTimeout bounds each call when --timeout is not given.
const defaultTimeout = 30 * time.Second

// remote is what the commands need from a cluster connection;
// *client.Client implements it.
type remote interface {
	Get(context.Context, *api.GetRequest) (*api.GetResponse, error)
	Put(context.Context, *api.PutRequest) (*api.PutResponse, error)
	Delete(context.Context, *api.DeleteRequest) (*api.DeleteResponse, error)
	CAS(context.Context, *api.CASRequest) (*api.CASResponse, error)
	CAD(context.Context, *api.CADRequest) (*api.CASResponse, error)
	Scan(context.Context, *api.ScanRequest) (*api.ScanResponse, error)
	BatchRead(context.Context, *api.BatchReadRequest) (*api.BatchReadResponse, error)
	BatchWrite(context.Context, *api.BatchWriteRequest) (*api.BatchWriteResponse, error)

	Health(context.Context) (*api.HealthResponse, error)
	Init(context.Context) (*api.MessageResponse, error)
	Status(context.Context) (*api.StatusResponse, error)
	Metrics(context.Context) (*api.MetricsResponse, error)
	Ticket(context.Context) (*api.TicketResponse, error)
	AddLearner(context.Context, *api.AddLearnerRequest) (*api.MessageResponse, error)
	ChangeMembership(context.Context, *api.ChangeMembershipRequest) (*api.MessageResponse, error)
	Promote(context.Context, *api.PromoteRequest) (*api.MessageResponse, error)
	Remove(context.Context, *api.RemoveRequest) (*api.MessageResponse, error)
	Prometheus(context.Context) (*api.PrometheusResponse, error)
	Snapshot(context.Context) (*api.SnapshotResponse, error)
	Backup(context.Context, io.Writer) (int64, error)
}

// dialFunc opens a connection to a cluster and returns it with the function
// that closes it.
type dialFunc func(client.Config) (remote, func(), error)

// dialClient is the production dialFunc.
func dialClient(cfg client.Config) (remote, func(), error) {
	c, err := client.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.Close() }, nil
}

// Run executes aspen-cli with args (without the program name) and returns the
// process exit code: 0 success, 1 negative answer, 2 usage error, 3 cluster
// unreachable or server error.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return run(ctx, args, stdio{in: stdin, out: stdout, err: stderr}, dialClient)
}

// stdio holds the three standard streams of one invocation.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// run is Run with its dependencies passed in.
func run(ctx context.Context, args []string, streams stdio, dial dialFunc) int {
	a := &app{io: streams, dial: dial}
	root := a.newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		a.printError(cmd, err)
	}
	return exitCode(err)
}

// globalOptions are the persistent flags of the root command.
type globalOptions struct {
	ticket  string
	token   string
	timeout timeoutValue
	json    bool
	verbose bool
	quiet   bool
}

// app is one invocation of aspen-cli: its streams, global options and the
// way it dials the cluster.
type app struct {
	io   stdio
	dial dialFunc
	opts globalOptions
	root *cobra.Command
}

const rootLong = `aspen-cli talks to an Aspen cluster: key/value operations and cluster
management.

The cluster is named by a ticket, taken from --ticket, else $ASPEN_TICKET,
else the file written by a development node started with 'aspen-node --dev'.

Output: human-readable on stdout; with --json exactly one JSON document on
stdout. Errors are one line on stderr ("CODE: message" for errors reported
by the cluster). Logs (-v) go to stderr.

Exit codes:
  0  success
  1  the operation ran but its answer is negative (CAS/CAD conflict,
     batch write not applied)
  2  usage error: bad command, flag, argument or missing ticket
  3  the cluster cannot be reached or reported a failure (or a local
     file could not be written)`

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "aspen-cli",
		Short:         "Talk to an Aspen cluster",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.opts.verbose && a.opts.quiet {
				return usageErrorf("-v and -q cannot be used together")
			}
			return nil
		},
	}
	a.root = root
	root.SetIn(a.io.in)
	root.SetOut(a.io.out)
	root.SetErr(a.io.err)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{msg: err.Error(), cmd: cmd}
	})

	a.opts.timeout = timeoutValue(defaultTimeout)
	pf := root.PersistentFlags()
	pf.StringVar(&a.opts.ticket, "ticket", "", "cluster ticket (env "+envTicket+"; default: the dev node's ticket file)")
	pf.StringVar(&a.opts.token, "token", "", "capability token (env "+envToken+"; reserved)")
	pf.Var(&a.opts.timeout, "timeout", "time limit of each call, a duration (30s, 2m) or bare milliseconds")
	pf.BoolVar(&a.opts.json, "json", false, "print exactly one JSON document on stdout")
	pf.BoolVarP(&a.opts.verbose, "verbose", "v", false, "log connection and retry details to stderr")
	pf.BoolVarP(&a.opts.quiet, "quiet", "q", false, "no hints or progress on stderr")

	root.AddCommand(a.newKVCmd(), a.newClusterCmd())
	root.AddCommand(a.newBenchCmd())
	root.AddCommand(a.newCoordCmds()...)
	root.AddCommand(a.newWorkerCmd())
	root.AddCommand(a.newBlobCmd())
	root.AddCommand(a.newHookCmd())
	markRunErrors(root)
	return root
}

// groupRunE is the RunE of commands that only group subcommands: called
// without a known subcommand, it is a usage error naming the choices.
func groupRunE(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	if len(args) == 0 {
		return &usageError{msg: "missing command: choose one of " + strings.Join(names, ", "), cmd: cmd}
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &usageError{msg: msg, cmd: cmd}
}

// markRunErrors wraps the RunE of every command in the tree so that errors a
// command returns are told apart from cobra's own parsing errors, which are
// all usage errors.
func markRunErrors(cmd *cobra.Command) {
	if f := cmd.RunE; f != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if err := f(c, args); err != nil {
				return &runError{err: err}
			}
			return nil
		}
	}
	for _, c := range cmd.Commands() {
		markRunErrors(c)
	}
}

// printer returns the printer chosen by --json and -q.
func (a *app) printer() printer {
	if a.opts.json {
		return jsonPrinter{w: a.io.out}
	}
	note := a.io.err
	if a.opts.quiet {
		note = io.Discard
	}
	return humanPrinter{out: a.io.out, note: note}
}

// notes is where hints and progress go: stderr, or nowhere with -q or --json.
func (a *app) notes() io.Writer {
	if a.opts.quiet || a.opts.json {
		return io.Discard
	}
	return a.io.err
}

// logger logs to stderr with -v and nowhere otherwise.
func (a *app) logger() *slog.Logger {
	if !a.opts.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(a.io.err, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// connect resolves the ticket and dials the cluster. The caller must call
// the returned close function.
func (a *app) connect() (remote, func(), error) {
	tk, source, err := a.resolveTicket()
	if err != nil {
		return nil, nil, err
	}
	log := a.logger()
	log.Debug("using cluster ticket", "source", source)
	if a.tokenValue() != "" {
		log.Debug("capability token given; this version does not send it yet")
	}
	c, closeFn, err := a.dial(client.Config{
		Ticket:  tk,
		Timeout: time.Duration(a.opts.timeout),
		Logger:  log,
	})
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("connect with the ticket from %s: %w", source, err)
	}
	return c, closeFn, nil
}

// tokenValue is --token, else $ASPEN_TOKEN.
func (a *app) tokenValue() string {
	if f := a.root.PersistentFlags().Lookup("token"); f != nil && f.Changed {
		return a.opts.token
	}
	return os.Getenv(envToken)
}

// resolveTicket finds the cluster ticket: --ticket, else $ASPEN_TICKET,
// else the dev node's ticket file. It also says where the ticket came from.
func (a *app) resolveTicket() (t, source string, err error) {
	if f := a.root.PersistentFlags().Lookup("ticket"); f != nil && f.Changed {
		t, source = strings.TrimSpace(a.opts.ticket), "--ticket"
		if t == "" {
			return "", "", usageErrorf("--ticket is empty: pass the ticket printed by aspen-node or 'aspen-cli cluster ticket'")
		}
	} else if env := strings.TrimSpace(os.Getenv(envTicket)); env != "" {
		t, source = env, "$"+envTicket
	} else {
		path := devmode.TicketPath()
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return "", "", usageErrorf("no cluster ticket: pass --ticket or set %s, or start a dev node with 'aspen-node --dev' (it writes %s)", envTicket, path)
		case err != nil:
			return "", "", usageErrorf("no cluster ticket: cannot read the dev ticket file: %v; pass --ticket or set %s", err, envTicket)
		}
		t, source = strings.TrimSpace(string(b)), path
		if t == "" {
			return "", "", usageErrorf("no cluster ticket: the dev ticket file %s is empty; restart 'aspen-node --dev' or pass --ticket", path)
		}
	}
	if _, err := ticket.Parse(t); err != nil {
		return "", "", usageErrorf("invalid cluster ticket from %s: %v; use the ticket printed by aspen-node or 'aspen-cli cluster ticket'", source, err)
	}
	return t, source, nil
}

// withRemote connects, runs f and closes the connection.
func (a *app) withRemote(f func(remote) error) error {
	c, closeFn, err := a.connect()
	if err != nil {
		return err
	}
	defer closeFn()
	return f(c)
}
