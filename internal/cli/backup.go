package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

type backupResult struct {
	Status string `json:"status"`
	File   string `json:"file"`
	Bytes  int64  `json:"bytes"`
}

func (r *backupResult) printHuman(out, _ io.Writer) error {
	_, err := fmt.Fprintf(out, "Backup written to %s (%s)\n", r.File, formatBytes(r.Bytes))
	return err
}

func (a *app) newClusterBackupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent copy of the node's state to FILE",
		Long: `Write a consistent copy of the answering node's whole state to FILE (mode
0600). The copy is written to a temporary file beside FILE and renamed when
complete, so a failed backup leaves no partial file; an existing FILE is
replaced only by a complete backup. --timeout bounds the whole transfer:
raise it for large stores.

To restore, start a new single-voter cluster from the backup:

  aspen-node --restore-from FILE --node-id N --cookie C --data-dir NEW_DIR

then add other nodes to it as usual.`,
		Args: exactArgs(1, "one FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.clusterBackup(cmd, args[0])
		},
	}
}

func (a *app) clusterBackup(cmd *cobra.Command, path string) error {
	if path == "" || path == "-" {
		return &usageError{msg: "FILE must be a file path", cmd: cmd}
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usageErrorf("cannot write %s: directory %s does not exist", path, dir)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return usageErrorf("cannot write %s: it is a directory", path)
	}
	return a.withRemote(func(c remote) error {
		tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
		if err != nil {
			return usageErrorf("cannot write %s: %v", path, err)
		}
		done := false
		defer func() {
			if !done {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		if err := tmp.Chmod(0o600); err != nil {
			return &localError{fmt.Errorf("write %s: %w", path, err)}
		}
		w := &backupWriter{w: tmp}
		if isTerminal(a.io.err) && !a.opts.quiet {
			w.progress = a.io.err
		}
		// The deadline covers the whole transfer; without one the client
		// would bound only the start of the call.
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Duration(a.opts.timeout))
		defer cancel()
		n, err := c.Backup(ctx, w)
		w.finish()
		if w.err != nil {
			return &localError{fmt.Errorf("write %s: %w", path, w.err)}
		}
		if err != nil {
			return err
		}
		if err := tmp.Sync(); err != nil {
			return &localError{fmt.Errorf("write %s: %w", path, err)}
		}
		if err := tmp.Close(); err != nil {
			return &localError{fmt.Errorf("write %s: %w", path, err)}
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			done = true
			return &localError{fmt.Errorf("write %s: %w", path, err)}
		}
		done = true
		syncDir(dir)
		return a.printer().print(&backupResult{Status: "success", File: path, Bytes: n})
	})
}

// backupWriter writes the backup to its file, remembering a write error
// (to tell a local failure from a network one) and showing progress.
type backupWriter struct {
	w        io.Writer
	n        int64
	err      error
	progress io.Writer // nil: no progress
	last     time.Time
}

func (b *backupWriter) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	b.n += int64(n)
	if err != nil && b.err == nil {
		b.err = err
	}
	if b.progress != nil && time.Since(b.last) > 200*time.Millisecond {
		b.last = time.Now()
		fmt.Fprintf(b.progress, "\rbackup: %s written", formatBytes(b.n))
	}
	return n, err
}

// finish ends the progress line.
func (b *backupWriter) finish() {
	if b.progress != nil && !b.last.IsZero() {
		fmt.Fprintf(b.progress, "\rbackup: %s written\n", formatBytes(b.n))
	}
}

// formatBytes renders a byte count for humans.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// syncDir makes a rename in dir durable; failures are ignored, since the
// backup itself is complete.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
