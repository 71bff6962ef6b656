package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aspen-dev/aspen/api"
)

// Exit codes of aspen-cli.
const (
	exitOK       = 0
	exitNegative = 1 // the operation ran; its answer is negative
	exitUsage    = 2 // bad command line or missing ticket
	exitFailure  = 3 // cluster unreachable or server error
)

// usageError is a bad command line: exit code 2. cmd, when set, is the
// command whose --help the message points to.
type usageError struct {
	msg string
	cmd *cobra.Command
}

func (e *usageError) Error() string { return e.msg }

// usageErrorf returns a *usageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errNegative is returned by a command that already printed a negative answer
// (a CAS conflict, for example): exit code 1 and nothing more on stderr.
var errNegative = errors.New("negative answer")

// runError marks an error returned by a command's RunE, as opposed to one
// from cobra's parsing of the command line.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// exitCode maps the error of an invocation to the process exit code. It is
// the only place that does.
func exitCode(err error) int {
	var ue *usageError
	var ae *api.Error
	var re *runError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errNegative):
		return exitNegative
	case errors.As(err, &ae):
		return api.ExitCode(ae)
	case errors.As(err, &re):
		// Anything else a command returns is a failure to reach or use the
		// cluster.
		return exitFailure
	default:
		// Errors from cobra itself: unknown command, flag or bad arguments.
		return exitUsage
	}
}

// printError writes err as one line on stderr.
func (a *app) printError(cmd *cobra.Command, err error) {
	if errors.Is(err, errNegative) {
		return
	}
	fmt.Fprintln(a.io.err, a.errorLine(cmd, err))
}

// errorLine is the one-line form of err, with a hint when one helps.
func (a *app) errorLine(cmd *cobra.Command, err error) string {
	var ue *usageError
	var ae *api.Error
	var re *runError
	switch {
	case errors.As(err, &ue):
		if ue.cmd == nil {
			// The message already says what to do.
			return oneLine(ue.msg)
		}
		return oneLine(ue.msg) + fmt.Sprintf(" (see '%s --help')", ue.cmd.CommandPath())
	case errors.As(err, &ae):
		line := string(ae.Code)
		if ae.Message != "" {
			line += ": " + oneLine(ae.Message)
		}
		if h := codeHint(ae.Code); h != "" {
			line += "; " + h
		}
		return line
	case errors.As(err, &re):
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Sprintf("cannot reach the cluster: no answer within %s; check that the node is running and the ticket is current, or raise --timeout",
				time.Duration(a.opts.timeout))
		}
		if errors.Is(err, context.Canceled) {
			return "interrupted"
		}
		var le *localError
		if errors.As(err, &le) {
			return oneLine(le.Error())
		}
		return "cannot reach the cluster: " + oneLine(err.Error()) + "; check that the node is running and the ticket is current"
	default:
		line := oneLine(err.Error())
		if cmd != nil {
			line += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
		}
		return line
	}
}

// localError is a failure on this machine (writing a backup file, for
// example), reported as it is rather than as an unreachable cluster.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// codeHint says what to do about a cluster error, when there is something.
func codeHint(c api.Code) string {
	switch c {
	case api.CodeNotLeader:
		return "the cluster has no reachable leader right now; retry, or check 'aspen-cli cluster health'"
	case api.CodeUnavailable:
		return "check that the node is running and the ticket is current, or raise --timeout"
	case api.CodeUnauthorized:
		return "check the ticket (and token)"
	case api.CodeUnimplemented:
		return "the node does not support this operation; is it an older version?"
	}
	return ""
}

// oneLine folds a multi-line message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
