package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/client"
)

// watcher is what kv watch needs beyond remote; *client.Client implements it.
type watcher interface {
	Watch(ctx context.Context, prefix []byte, opts client.WatchOptions) (<-chan client.WatchEvent, error)
}

type kvWatchOptions struct {
	fromRevision uint64
	prevValue    bool
	count        int
}

// kvWatchLine is one printed event: one JSON document per line.
type kvWatchLine struct {
	Type      api.WatchEventType `json:"type"`
	Key       bytesJSON          `json:"key"`
	Value     *bytesJSON         `json:"value,omitempty"`
	PrevValue *bytesJSON         `json:"prev_value,omitempty"`
	Revision  uint64             `json:"revision"`
}

func (a *app) newKVWatchCmd() *cobra.Command {
	var o kvWatchOptions
	cmd := &cobra.Command{
		Use:   "watch [PREFIX] [--from-revision R] [--prev-value] [--count N]",
		Short: "Print every change to keys with a prefix as it happens",
		Long: `Print every change to the keys starting with PREFIX (all keys when it is
omitted or empty), one JSON document per line, until interrupted or, with
--count, after N events:

  {"type":"put","key":"k","value":"v","revision":12}
  {"type":"delete","key":"k","revision":13}

Values follow the --json rule: a string when valid UTF-8, otherwise
{"base64": "..."}. --prev-value adds "prev_value" when the key had one.

Events come in revision order, each once; any node serves them, and the
watch moves to another node of the ticket when its node fails. Without
--from-revision the watch starts with the next change. A revision older
than the cluster still keeps fails with COMPACTED and the oldest revision
available (exit 1). --timeout bounds connecting, not the watch.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			return a.kvWatch(cmd, prefix, &o)
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&o.fromRevision, "from-revision", 0, "first revision to print (default: the next change)")
	f.BoolVar(&o.prevValue, "prev-value", false, "include each key's previous value")
	f.IntVar(&o.count, "count", 0, "exit after this many events (0: run until interrupted)")
	return cmd
}

func (a *app) kvWatch(cmd *cobra.Command, prefix string, o *kvWatchOptions) error {
	if len(prefix) > api.MaxKeySize {
		return usageErrorf("PREFIX is %d bytes; the limit is %d", len(prefix), api.MaxKeySize)
	}
	if o.count < 0 {
		return usageErrorf("--count must be 0 or more, not %d", o.count)
	}
	return a.withRemote(func(r remote) error {
		w, ok := r.(watcher)
		if !ok {
			return errors.New("this connection cannot watch")
		}
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		ch, err := w.Watch(ctx, []byte(prefix), client.WatchOptions{FromRevision: o.fromRevision, PrevValue: o.prevValue})
		if err != nil {
			return err
		}
		enc := json.NewEncoder(a.io.out)
		enc.SetEscapeHTML(false)
		n := 0
		for ev := range ch {
			if ev.Err != nil {
				if errors.Is(ev.Err, context.Canceled) && cmd.Context().Err() != nil {
					return nil // interrupted
				}
				return ev.Err
			}
			line := kvWatchLine{Type: ev.Type, Key: bytesJSON(ev.Key), Revision: ev.Revision}
			if ev.Type == api.WatchPut {
				line.Value = valueJSON(ev.Value)
			}
			if ev.HasPrevValue {
				line.PrevValue = valueJSON(ev.PrevValue)
			}
			if err := enc.Encode(&line); err != nil {
				return fmt.Errorf("writing event: %w", err)
			}
			if n++; o.count > 0 && n == o.count {
				return nil
			}
		}
		if cmd.Context().Err() != nil {
			return nil // interrupted
		}
		return errors.New("watch ended")
	})
}
