// Command aspen-node runs one node of an Aspen cluster.
//
// Configuration comes from flags, then ASPEN_* environment variables (the
// flag name in upper case with dashes as underscores, e.g. ASPEN_DATA_DIR),
// then a TOML file given by --config, then defaults. Run with --help for the
// flags; `aspen-node --dev` starts a ready single-node cluster.
package main

import (
	"os"

	"github.com/aspen-dev/aspen/internal/nodecmd"
)

func main() { os.Exit(nodecmd.Run(os.Args[1:], os.Stdout, os.Stderr)) }
