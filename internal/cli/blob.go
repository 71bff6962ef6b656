package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
	"github.com/aspen-dev/aspen/internal/blob"
)

// blobRemote is what the blob commands need; *client.Client implements it.
type blobRemote interface {
	BlobAdd(ctx context.Context, r io.Reader, tags ...string) (*api.BlobAddResponse, error)
	BlobGet(ctx context.Context, hash string, w io.Writer) (int64, error)
	BlobHas(ctx context.Context, hash string) (*api.BlobHasResponse, error)
	BlobList(ctx context.Context, req *api.BlobListRequest) (*api.BlobListResponse, error)
	BlobStatus(ctx context.Context, hash string) (*api.BlobStatusResponse, error)
	BlobProtect(ctx context.Context, hash, tag string) (*api.BlobTagResponse, error)
	BlobUnprotect(ctx context.Context, tag string) (*api.BlobTagResponse, error)
	BlobDelete(ctx context.Context, hash string, force bool) (*api.BlobTagResponse, error)
}

// blobAdminRemote is what the replication and ticket commands need;
// *client.Client implements it.
type blobAdminRemote interface {
	BlobReplicationStatus(ctx context.Context, hash string) (*api.BlobReplicationStatusResponse, error)
	BlobRepair(ctx context.Context, req *api.BlobRepairRequest) (*api.BlobRepairResponse, error)
	BlobRepairCycle(ctx context.Context) (*api.BlobRepairCycleResponse, error)
	BlobTicket(ctx context.Context, hash string, ttl time.Duration) (string, error)
}

// withBlobAdmin connects and runs f with the blob replication operations.
func (a *app) withBlobAdmin(f func(blobAdminRemote) error) error {
	return a.withRemote(func(r remote) error {
		b, ok := r.(blobAdminRemote)
		if !ok {
			return errors.New("this connection does not support blob replication")
		}
		return f(b)
	})
}

// withBlobs connects and runs f with the blob operations of the connection.
func (a *app) withBlobs(f func(blobRemote) error) error {
	return a.withRemote(func(r remote) error {
		b, ok := r.(blobRemote)
		if !ok {
			return errors.New("this connection does not support blobs")
		}
		return f(b)
	})
}

func checkHash(s string) error {
	if len(s) != 64 || strings.Trim(strings.ToLower(s), "0123456789abcdef") != "" {
		return usageErrorf("invalid blob hash %q: want 64 hex characters", s)
	}
	return nil
}

type blobAddResult struct{ *api.BlobAddResponse }

func (r blobAddResult) printHuman(out, _ io.Writer) error {
	state := "added"
	if !r.WasNew {
		state = "exists"
	}
	_, err := fmt.Fprintf(out, "%s (%d bytes, %s)\n", r.Hash, r.SizeBytes, state)
	return err
}

// negativeResult is a result that may be a negative answer: printed, then
// exit 1.
type negativeResult interface {
	result
	negative() bool
}

// printAnswer prints res unless err is set; a negative answer then exits 1.
func (a *app) printAnswer(res result, err error) error {
	if err != nil {
		return err
	}
	if err := a.printer().print(res); err != nil {
		return err
	}
	if n, ok := res.(negativeResult); ok && n.negative() {
		return errNegative
	}
	return nil
}

// hashRunE is the RunE of a command whose one argument is a blob HASH: it
// checks the hash, connects with with, and prints what call answers.
func hashRunE[R any](a *app, with func(func(R) error) error, call func(ctx context.Context, r R, hash string) (result, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := checkHash(args[0]); err != nil {
			return err
		}
		return with(func(r R) error { return a.printAnswer(call(cmd.Context(), r, args[0])) })
	}
}

type blobGetResult struct {
	WasFound  bool  `json:"was_found"`
	SizeBytes int64 `json:"size_bytes"`
	toFile    string
}

func (r blobGetResult) negative() bool { return !r.WasFound }

func (r blobGetResult) printHuman(_, note io.Writer) error {
	if !r.WasFound {
		_, err := fmt.Fprintln(note, "blob not found")
		return err
	}
	if r.toFile != "" {
		_, err := fmt.Fprintf(note, "wrote %s to %s\n", formatBytes(r.SizeBytes), r.toFile)
		return err
	}
	return nil
}

type blobHasResult struct{ *api.BlobHasResponse }

func (r blobHasResult) negative() bool { return !r.DoesExist }

func (r blobHasResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintln(out, r.DoesExist)
	return err
}

type blobListResult struct{ *api.BlobListResponse }

func (r blobListResult) printHuman(out, note io.Writer) error {
	for _, b := range r.Blobs {
		if _, err := fmt.Fprintf(out, "%s %d\n", b.Hash, b.SizeBytes); err != nil {
			return err
		}
	}
	if r.HasMore {
		_, err := fmt.Fprintf(note, "more: --token %s\n", r.ContinuationToken)
		return err
	}
	return nil
}

type blobStatusResult struct{ *api.BlobStatusResponse }

func (r blobStatusResult) negative() bool { return !r.WasFound }

func (r blobStatusResult) printHuman(out, _ io.Writer) error {
	if !r.WasFound {
		_, err := fmt.Fprintf(out, "%s: not found\n", r.Hash)
		return err
	}
	_, err := fmt.Fprintf(out, "%s\nsize: %d bytes\ncomplete: %v\ntags: %s\nreplicas: %v\n",
		r.Hash, r.SizeBytes, r.Complete, strings.Join(r.Tags, ", "), r.ReplicaNodes)
	return err
}

type blobTagResult struct{ *api.BlobTagResponse }

func (r blobTagResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintln(out, "OK")
	return err
}

// progress reports bytes moved on a terminal's stderr, at most 10 times a
// second, on one line.
type progress struct {
	w     io.Writer
	label string
	total int64 // 0 when unknown
	n     int64
	last  time.Time
}

func (a *app) newProgress(label string, total int64) *progress {
	if a.opts.quiet || a.opts.json || !isTerminal(a.io.err) {
		return nil
	}
	return &progress{w: a.io.err, label: label, total: total}
}

func (p *progress) add(n int) {
	if p == nil {
		return
	}
	p.n += int64(n)
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	if p.total > 0 {
		const width = 30
		done := int(p.n * width / p.total)
		fmt.Fprintf(p.w, "\r%s [%s%s] %s / %s", p.label, strings.Repeat("=", done), strings.Repeat(" ", width-done), formatBytes(p.n), formatBytes(p.total))
	} else {
		fmt.Fprintf(p.w, "\r%s %s", p.label, formatBytes(p.n))
	}
}

func (p *progress) done() {
	if p != nil && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (r progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (w progressWriter) Write(b []byte) (int, error) {
	n, err := w.w.Write(b)
	w.p.add(n)
	return n, err
}

type blobReplicationResult struct {
	*api.BlobReplicationStatusResponse
}

func (r blobReplicationResult) negative() bool { return !r.WasFound }

func (r blobReplicationResult) printHuman(out, _ io.Writer) error {
	if !r.WasFound {
		_, err := fmt.Fprintf(out, "%s: not found\n", r.Hash)
		return err
	}
	_, err := fmt.Fprintf(out, "%s\nstatus: %s\nreplicas: %v (%d of %d, min %d)\nneeded: %d\n",
		r.Hash, r.Status, r.ReplicaNodes, len(r.ReplicaNodes), r.ReplicationFactor, r.MinReplicas, r.ReplicasNeeded)
	return err
}

type blobRepairResult struct{ *api.BlobRepairResponse }

func (r blobRepairResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintf(out, "copied to: %v\nfailed: %v\ntook: %d ms\n", r.SuccessfulNodes, r.FailedNodes, r.DurationMs)
	return err
}

type blobRepairCycleResult struct{ *api.BlobRepairCycleResponse }

func (r blobRepairCycleResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintln(out, "repair cycle started")
	return err
}

type blobTicketResult struct {
	Ticket    string `json:"ticket"`
	ExpiresMs int64  `json:"expires_ms,omitempty"` // Unix ms; absent: never
}

func (r blobTicketResult) printHuman(out, note io.Writer) error {
	if _, err := fmt.Fprintln(out, r.Ticket); err != nil {
		return err
	}
	if r.ExpiresMs == 0 {
		return nil
	}
	_, err := fmt.Fprintf(note, "expires %s\n", time.UnixMilli(r.ExpiresMs).UTC().Format(time.RFC3339))
	return err
}

// newBlobCmd is `aspen-cli blob`.
func (a *app) newBlobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "blob",
		Short: "Content-addressed blobs",
		Long: `Immutable blobs named by the BLAKE3 hash of their content (64 hex
characters), stored on the cluster's nodes and verified in 16 KiB groups
on every read and transfer. Identical content is stored once.

Exit codes: 0 done, 1 negative answer (has: does not exist; get: not
found), 2 usage error, 3 cluster error. A progress bar is shown on stderr
for transfers when stderr is a terminal.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}

	var tags []string
	var data string
	var dataSet bool
	add := &cobra.Command{
		Use:   "add FILE|-",
		Short: "Store a file, stdin (-) or --data STRING; prints HASH (N bytes, added|exists)",
		Args: func(cmd *cobra.Command, args []string) error {
			dataSet = cmd.Flags().Changed("data")
			if dataSet && len(args) == 0 || !dataSet && len(args) == 1 {
				return nil
			}
			return usageErrorf("blob add takes one FILE (or - for stdin), or --data STRING")
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader
			var total int64
			switch {
			case dataSet:
				in, total = strings.NewReader(data), int64(len(data))
			case args[0] == "-":
				in = a.io.in
			default:
				f, err := os.Open(args[0])
				if err != nil {
					return &localError{err: err}
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil {
					total = fi.Size()
				}
				in = f
			}
			full := make([]string, len(tags))
			for i, t := range tags {
				full[i] = api.BlobUserTagPrefix + t
			}
			return a.withBlobs(func(r blobRemote) error {
				p := a.newProgress("uploading", total)
				if p != nil {
					in = progressReader{in, p}
				}
				res, err := r.BlobAdd(cmd.Context(), in, full...)
				p.done()
				return a.printAnswer(blobAddResult{res}, err)
			})
		},
	}
	add.Flags().StringVar(&data, "data", "", "store this string instead of a file")
	add.Flags().StringArrayVar(&tags, "tag", nil, "protect the blob under this tag (repeatable)")

	var outFile string
	get := &cobra.Command{
		Use:   "get HASH",
		Short: "Write a blob to stdout or -o FILE",
		Args:  exactArgs(1, "one HASH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkHash(args[0]); err != nil {
				return err
			}
			return a.withBlobs(func(r blobRemote) error {
				return a.blobGet(outFile, func(w io.Writer) (int64, error) { return r.BlobGet(cmd.Context(), args[0], w) })
			})
		},
	}
	get.Flags().StringVarP(&outFile, "output", "o", "", "write to FILE (atomically) instead of stdout")

	has := &cobra.Command{
		Use:   "has HASH",
		Short: "Whether the cluster holds a blob (exit 1 if not)",
		Args:  exactArgs(1, "one HASH"),
		RunE: hashRunE(a, a.withBlobs, func(ctx context.Context, r blobRemote, h string) (result, error) {
			res, err := r.BlobHas(ctx, h)
			return blobHasResult{res}, err
		}),
	}

	var maxResults int
	var token string
	list := &cobra.Command{
		Use:   "list",
		Short: "List blobs (paginated, hash order)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxResults < 1 || maxResults > api.MaxBlobList {
				return usageErrorf("--max-results %d: must be between 1 and %d", maxResults, api.MaxBlobList)
			}
			return a.withBlobs(func(r blobRemote) error {
				res, err := r.BlobList(cmd.Context(), &api.BlobListRequest{MaxResults: maxResults, ContinuationToken: token})
				return a.printAnswer(blobListResult{res}, err)
			})
		},
	}
	list.Flags().IntVar(&maxResults, "max-results", api.DefaultBlobList, "blobs per page (1..1000)")
	list.Flags().StringVar(&token, "token", "", "continuation token from the previous page")

	status := &cobra.Command{
		Use:   "status HASH",
		Short: "Size, tags and holders of a blob (exit 1 if unknown)",
		Args:  exactArgs(1, "one HASH"),
		RunE: hashRunE(a, a.withBlobs, func(ctx context.Context, r blobRemote, h string) (result, error) {
			res, err := r.BlobStatus(ctx, h)
			return blobStatusResult{res}, err
		}),
	}

	var protectTag string
	protect := &cobra.Command{
		Use:   "protect HASH --tag NAME",
		Short: "Protect a blob from garbage collection under a named tag",
		Args: func(cmd *cobra.Command, args []string) error {
			if protectTag == "" {
				return usageErrorf("blob protect needs --tag NAME")
			}
			return exactArgs(1, "one HASH")(cmd, args)
		},
		RunE: hashRunE(a, a.withBlobs, func(ctx context.Context, r blobRemote, h string) (result, error) {
			res, err := r.BlobProtect(ctx, h, protectTag)
			return blobTagResult{res}, err
		}),
	}
	protect.Flags().StringVar(&protectTag, "tag", "", "tag name")

	unprotect := &cobra.Command{
		Use:   "unprotect NAME",
		Short: "Remove a protection tag",
		Args:  exactArgs(1, "one tag NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBlobs(func(r blobRemote) error {
				res, err := r.BlobUnprotect(cmd.Context(), args[0])
				return a.printAnswer(blobTagResult{res}, err)
			})
		},
	}

	var force bool
	del := &cobra.Command{
		Use:   "delete HASH",
		Short: "Drop a blob's user tags (bytes go with garbage collection)",
		Args:  exactArgs(1, "one HASH"),
		RunE: hashRunE(a, a.withBlobs, func(ctx context.Context, r blobRemote, h string) (result, error) {
			res, err := r.BlobDelete(ctx, h, force)
			return blobTagResult{res}, err
		}),
	}
	del.Flags().BoolVar(&force, "force", false, "reserved: delete even if referenced (not implemented yet)")

	cmd.AddCommand(add, get, has, list, status, protect, unprotect, del)
	cmd.AddCommand(a.newBlobReplicationCmds()...)
	return cmd
}

// newBlobReplicationCmds are replication-status, repair, repair-cycle,
// ticket and download.
func (a *app) newBlobReplicationCmds() []*cobra.Command {
	repStatus := &cobra.Command{
		Use:   "replication-status HASH",
		Short: "Holders of a blob against the replication policy (healthy, degraded, under_replicated, critical)",
		Args:  exactArgs(1, "one HASH"),
		RunE: hashRunE(a, a.withBlobAdmin, func(ctx context.Context, r blobAdminRemote, h string) (result, error) {
			res, err := r.BlobReplicationStatus(ctx, h)
			return blobReplicationResult{res}, err
		}),
	}

	var targets []uint
	var factor int
	repair := &cobra.Command{
		Use:   "repair HASH",
		Short: "Copy a blob now until it has its replication factor of reachable holders",
		Args: func(cmd *cobra.Command, args []string) error {
			if factor < 0 || factor > api.MaxBlobReplicationFactor {
				return usageErrorf("--replication-factor %d: must be %d..%d", factor, api.MinBlobReplicationFactor, api.MaxBlobReplicationFactor)
			}
			return exactArgs(1, "one HASH")(cmd, args)
		},
		RunE: hashRunE(a, a.withBlobAdmin, func(ctx context.Context, r blobAdminRemote, h string) (result, error) {
			req := &api.BlobRepairRequest{Hash: h, ReplicationFactor: factor}
			for _, t := range targets {
				req.Targets = append(req.Targets, uint64(t))
			}
			res, err := r.BlobRepair(ctx, req)
			return blobRepairResult{res}, err
		}),
	}
	repair.Flags().UintSliceVar(&targets, "targets", nil, "node IDs to copy to first (e.g. 1,2)")
	repair.Flags().IntVar(&factor, "replication-factor", 0, "holders wanted (1..7; default: the cluster policy)")

	cycle := &cobra.Command{
		Use:   "repair-cycle",
		Short: "Start a repair pass over every blob (returns at once)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withBlobAdmin(func(r blobAdminRemote) error {
				res, err := r.BlobRepairCycle(cmd.Context())
				return a.printAnswer(blobRepairCycleResult{res}, err)
			})
		},
	}

	var expires time.Duration
	tk := &cobra.Command{
		Use:   "ticket HASH [--expires DUR]",
		Short: "Print a ticket that lets its holder download this blob and nothing else",
		Long: `Print a blob ticket: a string naming the blob, the nodes holding it and a
capability, signed by the cluster, to read that blob and nothing else, valid
for --expires (e.g. 1h, 7d is 168h; default: no expiry). Whoever holds it can
run 'aspen-cli blob download TICKET' without a cluster ticket. Exit 1 when
no node holds the blob.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if expires < 0 || expires > time.Duration(api.MaxBlobTicketTTLMs)*time.Millisecond || expires > 0 && expires < time.Millisecond {
				return usageErrorf("--expires %s: must be 1ms to %s (366 days), or 0 for no expiry", expires, time.Duration(api.MaxBlobTicketTTLMs)*time.Millisecond)
			}
			return exactArgs(1, "one HASH")(cmd, args)
		},
		RunE: hashRunE(a, a.withBlobAdmin, func(ctx context.Context, r blobAdminRemote, h string) (result, error) {
			t, err := r.BlobTicket(ctx, h, expires)
			if errors.Is(err, api.ErrNotFound) {
				return blobGetResult{WasFound: false}, nil
			}
			if err != nil {
				return nil, err
			}
			bt, err := blob.ParseTicket(t)
			return blobTicketResult{Ticket: t, ExpiresMs: bt.ExpiresMs}, err
		}),
	}
	tk.Flags().DurationVar(&expires, "expires", 0, "how long the ticket is valid (e.g. 30m, 24h; 0: no expiry)")

	var outFile string
	download := &cobra.Command{
		Use:   "download TICKET",
		Short: "Fetch the blob a blob ticket names to stdout or -o FILE (no cluster ticket needed)",
		Long: `Fetch the blob a blob ticket names from the nodes it lists, verifying
every 16 KiB group against the hash, to stdout or, atomically, to -o FILE.
No cluster ticket is needed. Exit 3 with UNAUTHORIZED when the ticket has
expired or was not issued by that cluster for that blob (ask for a new one
with 'aspen-cli blob ticket HASH').`,
		Args: exactArgs(1, "one blob TICKET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := blob.ParseTicket(args[0]); err != nil {
				return usageErrorf("%v", err)
			}
			cfg := client.Config{Timeout: time.Duration(a.opts.timeout), Logger: a.logger()}
			return a.blobGet(outFile, func(w io.Writer) (int64, error) {
				_, n, err := client.BlobDownload(cmd.Context(), cfg, args[0], w)
				return n, err
			})
		},
	}
	download.Flags().StringVarP(&outFile, "output", "o", "", "write to FILE (atomically) instead of stdout")

	return []*cobra.Command{repStatus, repair, cycle, tk, download}
}

// blobGet writes the blob fetch delivers to stdout or, atomically, to path.
func (a *app) blobGet(path string, fetch func(io.Writer) (int64, error)) error {
	var w io.Writer = a.io.out
	var tmp *os.File
	if path != "" {
		var err error
		tmp, err = os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
		if err != nil {
			return &localError{err: err}
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		w = tmp
	}
	p := a.newProgress("downloading", 0)
	if p != nil {
		w = progressWriter{w, p}
	}
	if a.opts.json && path == "" {
		w = io.Discard // --json prints one document: no data
	}
	n, err := fetch(w)
	p.done()
	if errors.Is(err, api.ErrNotFound) {
		return a.printAnswer(blobGetResult{WasFound: false}, nil)
	}
	if err != nil {
		return err
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return &localError{err: err}
		}
		if err := tmp.Close(); err != nil {
			return &localError{err: err}
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return &localError{err: err}
		}
	}
	return a.printer().print(blobGetResult{WasFound: true, SizeBytes: n, toFile: path})
}
