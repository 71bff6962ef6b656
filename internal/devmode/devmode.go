// Package devmode owns the location of the local development cluster's files,
// shared by `aspen-node --dev` (which writes them) and `aspen-cli` (which finds
// the dev ticket there when no --ticket or ASPEN_TICKET is given).
package devmode

import (
	"os"
	"path/filepath"
)

// TicketFile is the name of the file, inside a node's data directory, that
// holds its cluster ticket.
const TicketFile = "cluster-ticket.txt"

// DataDir returns the data directory of the development node, in this order:
// $ASPEN_DEV_DIR if set and non-empty; $XDG_DATA_HOME/aspen/dev if
// XDG_DATA_HOME is an absolute path (the XDG spec says relative values are
// ignored); ~/.local/share/aspen/dev; and, when no home directory is known,
// aspen-dev under the system temporary directory.
func DataDir() string {
	if d := os.Getenv("ASPEN_DEV_DIR"); d != "" {
		return d
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "aspen", "dev")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".local", "share", "aspen", "dev")
	}
	return filepath.Join(os.TempDir(), "aspen-dev")
}

// TicketPath returns the path of the development node's ticket file,
// DataDir()/cluster-ticket.txt.
func TicketPath() string {
	return filepath.Join(DataDir(), TicketFile)
}
