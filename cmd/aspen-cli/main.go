// Command aspen-cli talks to an Aspen cluster: key/value operations and
// cluster management. See `aspen-cli --help`.
package main

import (
	"os"

	"github.com/aspen-dev/aspen/internal/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
