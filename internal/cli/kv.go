package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
)

func (a *app) newKVCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Read and write keys",
		Long: `Read and write keys of the cluster's replicated key/value store.

Keys are non-empty and at most 1024 bytes; values at most 1 MiB. In --json
output a value is a string when it is valid UTF-8, otherwise {"base64": "..."}.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cmd.AddCommand(
		a.newKVGetCmd(),
		a.newKVSetCmd(),
		a.newKVDeleteCmd(),
		a.newKVCASCmd(),
		a.newKVCADCmd(),
		a.newKVScanCmd(),
		a.newKVBatchReadCmd(),
		a.newKVBatchWriteCmd(),
		a.newKVWatchCmd(),
	)
	return cmd
}

// ---- kv get ----

type kvGetOptions struct {
	consistency consistencyValue
}

type kvGetResult struct {
	Key            bytesJSON  `json:"key"`
	DoesExist      bool       `json:"does_exist"`
	Value          *bytesJSON `json:"value"`
	Version        int64      `json:"version,omitempty"`
	CreateRevision uint64     `json:"create_revision,omitempty"`
	ModRevision    uint64     `json:"mod_revision,omitempty"`
}

func (r *kvGetResult) printHuman(out, _ io.Writer) error {
	if !r.DoesExist {
		_, err := fmt.Fprintf(out, "Key '%s' not found\n", display(r.Key, 0))
		return err
	}
	if _, err := out.Write(*r.Value); err != nil {
		return err
	}
	_, err := io.WriteString(out, "\n")
	return err
}

func (a *app) newKVGetCmd() *cobra.Command {
	var o kvGetOptions
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Read a key",
		Long: `Read a key. Prints its value, or "Key 'KEY' not found"; a missing key is not
an error (exit 0; with --json, does_exist is false and value null).`,
		Args: exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.kvGet(cmd, args[0], &o)
		},
	}
	addConsistencyFlag(cmd, &o.consistency)
	return cmd
}

func (a *app) kvGet(cmd *cobra.Command, key string, o *kvGetOptions) error {
	if err := checkKey(key, "KEY"); err != nil {
		return err
	}
	return a.withRemote(func(c remote) error {
		resp, err := c.Get(cmd.Context(), &api.GetRequest{Key: []byte(key), Consistency: api.Consistency(o.consistency)})
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			return err
		}
		r := &kvGetResult{Key: bytesJSON(key)}
		if err == nil && resp != nil && resp.KV != nil {
			r.DoesExist = true
			r.Value = valueJSON(resp.KV.Value)
			r.Version = resp.KV.Version
			r.CreateRevision = resp.KV.CreateRevision
			r.ModRevision = resp.KV.ModRevision
		}
		return a.printer().print(r)
	})
}

// ---- kv set ----

type kvSetOptions struct {
	file  string
	ttl   string
	lease int64
}

type kvSetResult struct {
	Status   string    `json:"status"`
	Key      bytesJSON `json:"key"`
	Revision uint64    `json:"revision"`
}

func (r *kvSetResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintln(out, "OK")
	return err
}

func (a *app) newKVSetCmd() *cobra.Command {
	var o kvSetOptions
	cmd := &cobra.Command{
		Use:   "set KEY [VALUE]",
		Short: "Write a key",
		Long: `Write a key, from VALUE or from the file given by --file ("-" reads stdin).
Give exactly one of them. A file is read verbatim: it may be empty or binary.`,
		Example: `  aspen-cli kv set greeting hello
  aspen-cli kv set config --file ./config.json
  echo -n token | aspen-cli kv set session/42 --file - --ttl 10m
  aspen-cli kv set worker/7 alive --lease 1234   # deleted when lease 1234 ends`,
		Args: rangeArgs(1, 2, "KEY and VALUE, or KEY with --file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.kvSet(cmd, args, &o)
		},
	}
	cmd.Flags().StringVar(&o.file, "file", "", "read the value from this file (\"-\" for stdin)")
	cmd.Flags().StringVar(&o.ttl, "ttl", "", "expire the key after this duration (e.g. 30s, 10m)")
	cmd.Flags().Int64Var(&o.lease, "lease", 0, "attach the key to this lease (see 'aspen-cli lease'): it is deleted when the lease is revoked or expires")
	return cmd
}

func (a *app) kvSet(cmd *cobra.Command, args []string, o *kvSetOptions) error {
	key := args[0]
	if err := checkKey(key, "KEY"); err != nil {
		return err
	}
	fileSet := cmd.Flags().Changed("file")
	var value []byte
	switch {
	case len(args) == 2 && fileSet:
		return &usageError{msg: "give either VALUE or --file, not both", cmd: cmd}
	case len(args) == 2:
		value = []byte(args[1])
	case fileSet:
		v, err := readValueFile(o.file, a.io.in)
		if err != nil {
			return err
		}
		value = v
	default:
		return &usageError{msg: "missing VALUE: give it as an argument or with --file", cmd: cmd}
	}
	if len(value) > api.MaxValueSize {
		return usageErrorf("value is %d bytes; the limit is %d (1 MiB)", len(value), api.MaxValueSize)
	}
	var ttlMs int64
	if cmd.Flags().Changed("ttl") {
		ms, err := parseTTL(o.ttl)
		if err != nil {
			return err
		}
		ttlMs = ms
	}
	if cmd.Flags().Changed("lease") {
		if ttlMs != 0 {
			return &usageError{msg: "give either --ttl or --lease, not both", cmd: cmd}
		}
		if o.lease < 1 || o.lease > api.MaxLeaseID {
			return usageErrorf("--lease %d: want a lease id 1..%d", o.lease, int64(api.MaxLeaseID))
		}
		return a.withCoord(func(c coordRemote) error {
			resp, err := c.LeasePut(cmd.Context(), &api.LeasePutRequest{LeaseID: o.lease, Key: []byte(key), Value: value})
			if err != nil {
				return err
			}
			return a.printer().print(&kvSetResult{Status: "success", Key: bytesJSON(key), Revision: resp.Revision})
		})
	}
	return a.withRemote(func(c remote) error {
		resp, err := c.Put(cmd.Context(), &api.PutRequest{Key: []byte(key), Value: value, TTLMs: ttlMs})
		if err != nil {
			return err
		}
		return a.printer().print(&kvSetResult{Status: "success", Key: bytesJSON(key), Revision: resp.Revision})
	})
}

// readValueFile reads a value file verbatim, "-" meaning stdin, refusing
// more than api.MaxValueSize bytes without reading them all.
func readValueFile(path string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	name := path
	if path == "-" {
		if stdin == nil {
			stdin = strings.NewReader("")
		}
		r, name = stdin, "stdin"
	} else {
		if path == "" {
			return nil, usageErrorf("--file is empty: give a path, or - for stdin")
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, usageErrorf("cannot read --file: %v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, api.MaxValueSize+1))
	if err != nil {
		return nil, usageErrorf("cannot read %s: %v", name, err)
	}
	if len(b) > api.MaxValueSize {
		return nil, usageErrorf("value in %s is larger than the limit of %d bytes (1 MiB)", name, api.MaxValueSize)
	}
	return b, nil
}

// ---- kv delete ----

type kvDeleteResult struct {
	Status     string    `json:"status"`
	Key        bytesJSON `json:"key"`
	WasDeleted bool      `json:"was_deleted"`
}

func (r *kvDeleteResult) printHuman(out, _ io.Writer) error {
	msg := "Deleted"
	if !r.WasDeleted {
		msg = "Key not found"
	}
	_, err := fmt.Fprintln(out, msg)
	return err
}

func (a *app) newKVDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a key",
		Long: `Delete a key. Deleting a missing key succeeds too (exit 0): was_deleted says
whether the key existed.`,
		Args: exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if err := checkKey(key, "KEY"); err != nil {
				return err
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.Delete(cmd.Context(), &api.DeleteRequest{Key: []byte(key)})
				if err != nil {
					return err
				}
				return a.printer().print(&kvDeleteResult{Status: "success", Key: bytesJSON(key), WasDeleted: resp.Existed})
			})
		},
	}
}

// ---- kv cas / cad ----

type kvCASOptions struct {
	expected string
	newValue string
}

// kvCASResult is the result of kv cas and kv cad. ActualValue is only
// present on conflict: the current value, or null when the key is missing.
type kvCASResult struct {
	Status      string          `json:"status"`
	Key         bytesJSON       `json:"key"`
	IsSuccess   bool            `json:"is_success"`
	ActualValue json.RawMessage `json:"actual_value,omitempty"`

	okText string // human text on success
	actual []byte // current value on conflict (nil when missing)
	exists bool   // whether the key exists, on conflict
}

func (r *kvCASResult) printHuman(out, _ io.Writer) error {
	if r.IsSuccess {
		_, err := fmt.Fprintln(out, r.okText)
		return err
	}
	current := "key does not exist"
	if r.exists {
		current = "current: " + display(r.actual, humanMaxValue)
	}
	_, err := fmt.Fprintf(out, "CONFLICT: value has changed (%s)\n", current)
	return err
}

// newCASResult builds the result of a CAS or CAD response.
func newCASResult(key string, resp *api.CASResponse, okText string) (*kvCASResult, error) {
	r := &kvCASResult{Key: bytesJSON(key), IsSuccess: resp.Succeeded, okText: okText}
	if resp.Succeeded {
		r.Status = "success"
		return r, nil
	}
	r.Status = "conflict"
	r.ActualValue = json.RawMessage("null")
	if resp.Actual != nil {
		r.exists, r.actual = true, resp.Actual.Value
		b, err := json.Marshal(bytesJSON(resp.Actual.Value))
		if err != nil {
			return nil, err
		}
		r.ActualValue = b
	}
	return r, nil
}

// printCAS prints a CAS or CAD result; a conflict is a negative answer.
func (a *app) printCAS(r *kvCASResult) error {
	if err := a.printer().print(r); err != nil {
		return err
	}
	if !r.IsSuccess {
		return errNegative
	}
	return nil
}

func (a *app) newKVCASCmd() *cobra.Command {
	var o kvCASOptions
	cmd := &cobra.Command{
		Use:   "cas KEY --new-value NEW [--expected OLD]",
		Short: "Compare and swap a key",
		Long: `Set KEY to NEW only if it currently holds exactly OLD. Without --expected,
set it only if it does not exist (create-if-absent).

On conflict nothing changes, the current value is shown (actual_value in
--json, null when the key is missing) and the exit code is 1.`,
		Args: exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if err := checkKey(key, "KEY"); err != nil {
				return err
			}
			req := &api.CASRequest{Key: []byte(key), NewValue: []byte(o.newValue)}
			if cmd.Flags().Changed("expected") {
				req.Expected = []byte(o.expected)
			} else {
				req.MustNotExist = true
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.CAS(cmd.Context(), req)
				if err != nil {
					return err
				}
				r, err := newCASResult(key, resp, "OK")
				if err != nil {
					return err
				}
				return a.printCAS(r)
			})
		},
	}
	cmd.Flags().StringVar(&o.expected, "expected", "", "the value the key must hold (omit: the key must not exist)")
	cmd.Flags().StringVar(&o.newValue, "new-value", "", "the value to write")
	_ = cmd.MarkFlagRequired("new-value")
	return cmd
}

func (a *app) newKVCADCmd() *cobra.Command {
	var o kvCASOptions
	cmd := &cobra.Command{
		Use:   "cad KEY --expected OLD",
		Short: "Compare and delete a key",
		Long: `Delete KEY only if it exists and holds exactly OLD (which must not be empty).
On conflict nothing changes, the current value is shown and the exit code is 1.`,
		Args: exactArgs(1, "one KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if err := checkKey(key, "KEY"); err != nil {
				return err
			}
			if o.expected == "" {
				return &usageError{msg: "--expected must not be empty", cmd: cmd}
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.CAD(cmd.Context(), &api.CADRequest{Key: []byte(key), Expected: []byte(o.expected)})
				if err != nil {
					return err
				}
				r, err := newCASResult(key, resp, "Deleted")
				if err != nil {
					return err
				}
				return a.printCAS(r)
			})
		},
	}
	cmd.Flags().StringVar(&o.expected, "expected", "", "the value the key must hold")
	_ = cmd.MarkFlagRequired("expected")
	return cmd
}

// ---- kv scan ----

// defaultScanLimit is the CLI's page size when --limit is not given.
const defaultScanLimit = 100

type kvScanOptions struct {
	limit       int
	token       string
	consistency consistencyValue
}

type kvEntry struct {
	Key            bytesJSON `json:"key"`
	Value          bytesJSON `json:"value"`
	Version        int64     `json:"version"`
	CreateRevision uint64    `json:"create_revision"`
	ModRevision    uint64    `json:"mod_revision"`
}

type kvScanResult struct {
	Entries           []kvEntry `json:"entries"`
	Count             int       `json:"count"`
	ContinuationToken *string   `json:"continuation_token"`
}

func (r *kvScanResult) printHuman(out, note io.Writer) error {
	for _, e := range r.Entries {
		if _, err := fmt.Fprintf(out, "%s: %s\n", display(e.Key, 0), display(e.Value, humanMaxValue)); err != nil {
			return err
		}
	}
	if r.ContinuationToken != nil {
		fmt.Fprintf(note, "more keys: use --token %s\n", shellQuote(*r.ContinuationToken))
	} else if r.Count == 0 {
		fmt.Fprintln(note, "no keys found")
	}
	return nil
}

func (a *app) newKVScanCmd() *cobra.Command {
	var o kvScanOptions
	cmd := &cobra.Command{
		Use:   "scan [PREFIX]",
		Short: "List keys with a prefix",
		Long: `List keys starting with PREFIX (all keys without it) in ascending byte order,
one page at a time. When more keys remain, the page's continuation token is
printed (a hint on stderr; continuation_token in --json): pass it as --token
to get the next page.

Here --token is the continuation token; the capability token of this command
comes from $ASPEN_TOKEN.`,
		Args: rangeArgs(0, 1, "at most one PREFIX"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.kvScan(cmd, args, &o)
		},
	}
	cmd.Flags().IntVar(&o.limit, "limit", defaultScanLimit, fmt.Sprintf("keys per page, 1..%d", api.MaxScanLimit))
	cmd.Flags().StringVar(&o.token, "token", "", "continuation token from the previous page")
	addConsistencyFlag(cmd, &o.consistency)
	return cmd
}

func (a *app) kvScan(cmd *cobra.Command, args []string, o *kvScanOptions) error {
	var prefix string
	if len(args) == 1 {
		prefix = args[0]
	}
	if o.limit < 1 || o.limit > api.MaxScanLimit {
		return &usageError{msg: fmt.Sprintf("--limit must be between 1 and %d, got %d", api.MaxScanLimit, o.limit), cmd: cmd}
	}
	return a.withRemote(func(c remote) error {
		resp, err := c.Scan(cmd.Context(), &api.ScanRequest{
			Prefix:            []byte(prefix),
			Limit:             o.limit,
			ContinuationToken: o.token,
			Consistency:       api.Consistency(o.consistency),
		})
		if err != nil {
			return err
		}
		r := &kvScanResult{Entries: make([]kvEntry, 0, len(resp.Entries))}
		for _, kv := range resp.Entries {
			r.Entries = append(r.Entries, kvEntry{
				Key:            bytesJSON(kv.Key),
				Value:          bytesJSON(kv.Value),
				Version:        kv.Version,
				CreateRevision: kv.CreateRevision,
				ModRevision:    kv.ModRevision,
			})
		}
		r.Count = len(r.Entries)
		if resp.ContinuationToken != "" {
			t := resp.ContinuationToken
			r.ContinuationToken = &t
		}
		return a.printer().print(r)
	})
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+@%,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ---- kv batch-read ----

type kvBatchReadOptions struct {
	consistency consistencyValue
}

type kvBatchItem struct {
	Key       bytesJSON  `json:"key"`
	DoesExist bool       `json:"does_exist"`
	Value     *bytesJSON `json:"value"`
}

type kvBatchReadResult struct {
	Count   int           `json:"count"`
	Results []kvBatchItem `json:"results"`
}

func (r *kvBatchReadResult) printHuman(out, _ io.Writer) error {
	for _, it := range r.Results {
		v := "(not found)"
		if it.DoesExist {
			v = display(*it.Value, humanMaxValue)
		}
		if _, err := fmt.Fprintf(out, "%s: %s\n", display(it.Key, 0), v); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) newKVBatchReadCmd() *cobra.Command {
	var o kvBatchReadOptions
	cmd := &cobra.Command{
		Use:   "batch-read KEY...",
		Short: "Read up to 100 keys at once",
		Long: `Read 1 to 100 keys at one revision. Results are in request order, one per key
(duplicates allowed); a missing key has does_exist false and is not an error.`,
		Args: rangeArgs(1, api.MaxBatchOps, fmt.Sprintf("1 to %d KEYs", api.MaxBatchOps)),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys := make([][]byte, len(args))
			for i, k := range args {
				if err := checkKey(k, fmt.Sprintf("key #%d", i+1)); err != nil {
					return err
				}
				keys[i] = []byte(k)
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.BatchRead(cmd.Context(), &api.BatchReadRequest{Keys: keys, Consistency: api.Consistency(o.consistency)})
				if err != nil {
					return err
				}
				r := &kvBatchReadResult{Results: make([]kvBatchItem, 0, len(args))}
				for i, k := range args {
					it := kvBatchItem{Key: bytesJSON(k)}
					if i < len(resp.Results) && resp.Results[i].KV != nil {
						it.DoesExist = true
						it.Value = valueJSON(resp.Results[i].KV.Value)
					}
					r.Results = append(r.Results, it)
				}
				r.Count = len(r.Results)
				return a.printer().print(r)
			})
		},
	}
	addConsistencyFlag(cmd, &o.consistency)
	return cmd
}

// ---- kv batch-write ----

type kvBatchWriteOptions struct {
	deletes []string
}

type kvBatchWriteResult struct {
	IsSuccess         bool `json:"is_success"`
	OperationsApplied int  `json:"operations_applied"`
}

func (r *kvBatchWriteResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintf(out, "OK: %d operations applied\n", r.OperationsApplied)
	return err
}

func (a *app) newKVBatchWriteCmd() *cobra.Command {
	var o kvBatchWriteOptions
	cmd := &cobra.Command{
		Use:   "batch-write KEY=VALUE... [--delete KEY]...",
		Short: "Write and delete up to 100 keys atomically",
		Long: `Apply sets (KEY=VALUE arguments, split at the first '=', so values may contain
'='; an empty value is allowed) and deletes (--delete KEY, repeatable) as one
atomic command: all are applied or none. Sets come first, then deletes, in
the order given. At most 100 operations in total.`,
		Example: `  aspen-cli kv batch-write a=alpha b=beta c=gamma
  aspen-cli kv batch-write config/url=https://x/?a=b --delete config/old`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ops, err := parseBatchOps(args, o.deletes)
			if err != nil {
				return err
			}
			return a.withRemote(func(c remote) error {
				resp, err := c.BatchWrite(cmd.Context(), &api.BatchWriteRequest{Ops: ops})
				if err != nil {
					return err
				}
				return a.printer().print(&kvBatchWriteResult{IsSuccess: true, OperationsApplied: resp.OperationsApplied})
			})
		},
	}
	cmd.Flags().StringArrayVar(&o.deletes, "delete", nil, "delete this key in the batch (repeatable)")
	return cmd
}

// parseBatchOps turns KEY=VALUE arguments and --delete keys into the write
// operations of one batch.
func parseBatchOps(pairs, deletes []string) ([]api.WriteOp, error) {
	n := len(pairs) + len(deletes)
	switch {
	case n == 0:
		return nil, usageErrorf("nothing to write: give KEY=VALUE arguments or --delete KEY")
	case n > api.MaxBatchOps:
		return nil, usageErrorf("at most %d operations per batch, got %d", api.MaxBatchOps, n)
	}
	ops := make([]api.WriteOp, 0, n)
	for i, p := range pairs {
		key, value, ok := strings.Cut(p, "=")
		if !ok {
			return nil, usageErrorf("argument #%d %q: expected KEY=VALUE", i+1, p)
		}
		if err := checkKey(key, fmt.Sprintf("argument #%d %q: key", i+1, p)); err != nil {
			return nil, err
		}
		if len(value) > api.MaxValueSize {
			return nil, usageErrorf("argument #%d: value is %d bytes; the limit is %d", i+1, len(value), api.MaxValueSize)
		}
		ops = append(ops, api.WriteOp{Kind: api.WriteSet, Key: []byte(key), Value: []byte(value)})
	}
	for _, k := range deletes {
		if err := checkKey(k, "--delete key"); err != nil {
			return nil, err
		}
		ops = append(ops, api.WriteOp{Kind: api.WriteDelete, Key: []byte(k)})
	}
	return ops, nil
}
