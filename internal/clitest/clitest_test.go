// Package clitest runs end-to-end tests of the aspen-node and aspen-cli
// binaries with testscript: each testdata/*.txtar script starts real nodes as
// background processes on loopback and drives them with aspen-cli.
//
// Besides the testscript built-ins, scripts have these commands:
//
//	waitfile PATH
//	    wait until PATH exists and is not empty.
//	ticket VAR DIR
//	    set $VAR to the ticket in DIR/cluster-ticket.txt, trimmed.
//	nodeaddr [-bind] VAR TICKET
//	    set $VAR to the first node of TICKET as KEY@HOST:PORT (the form of
//	    'cluster add-learner --addr'); with -bind, to its HOST:PORT only
//	    (to restart a node on the port it had).
//	waitcli [-stdout REGEXP] ARGS...
//	    run 'aspen-cli ARGS...' until it exits 0 and, with -stdout, until its
//	    stdout matches REGEXP; stdout and stderr are those of the last run.
//	jsonfield PATH WANT
//	    the JSON document on the last stdout has WANT at PATH.
//	jsonvar VAR PATH
//	    set $VAR to the value at PATH of the JSON document on the last stdout.
//	exitcode N PROGRAM ARGS...
//	    run PROGRAM ARGS... (like exec) and require exit status N.
//	repeat VAR N TEXT
//	    set $VAR to TEXT repeated N times.
//	repeatfile FILE N TEXT
//	    write TEXT repeated N times to FILE.
//
// TEXT of repeat and repeatfile may hold Go escapes: '\t', '\n', '\xff'.
//
// A PATH is dot-separated: object keys, array indexes, and '#' for the
// length of an array (nodes.0.is_voter, 'nodes.#': quote it, since an
// unquoted # starts a comment). A value compares as its
// text when it is a JSON string and as compact JSON otherwise (true, 3,
// null, {"base64":"..."}).
//
// Every wait has a deadline (waitTimeout); none sleeps a fixed time.
package clitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/aspen-dev/aspen/internal/cli"
	"github.com/aspen-dev/aspen/internal/nodecmd"
	"github.com/aspen-dev/aspen/internal/ticket"
)

// waitTimeout bounds every wait of waitfile and waitcli.
const waitTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"aspen-node": func() { os.Exit(nodecmd.Run(os.Args[1:], os.Stdout, os.Stderr)) },
		"aspen-cli":  func() { os.Exit(cli.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Never touch the real dev node of the user running the tests.
			env.Setenv("ASPEN_DEV_DIR", filepath.Join(env.WorkDir, "dev"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile":   cmdWaitFile,
			"ticket":     cmdTicket,
			"nodeaddr":   cmdNodeAddr,
			"waitcli":    cmdWaitCLI,
			"jsonfield":  cmdJSONField,
			"jsonvar":    cmdJSONVar,
			"exitcode":   cmdExitCode,
			"repeat":     cmdRepeat,
			"repeatfile": cmdRepeatFile,
		},
	})
}

// poll calls f with growing pauses until it returns true or waitTimeout
// passes, and reports whether it did.
func poll(f func() bool) bool {
	deadline := time.Now().Add(waitTimeout)
	pause := 50 * time.Millisecond
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(pause*2, 500*time.Millisecond)
	}
}

func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile PATH")
	}
	path := ts.MkAbs(args[0])
	ok := poll(func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Size() > 0
	})
	if !ok {
		ts.Fatalf("%s did not appear within %s", args[0], waitTimeout)
	}
}

func cmdTicket(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: ticket VAR DIR")
	}
	t := strings.TrimSpace(ts.ReadFile(filepath.Join(args[1], "cluster-ticket.txt")))
	if t == "" {
		ts.Fatalf("%s/cluster-ticket.txt is empty", args[1])
	}
	ts.Setenv(args[0], t)
}

func cmdNodeAddr(ts *testscript.TestScript, neg bool, args []string) {
	bind := len(args) > 0 && args[0] == "-bind"
	if bind {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: nodeaddr [-bind] VAR TICKET")
	}
	t, err := ticket.Parse(args[1])
	ts.Check(err)
	if len(t.Peers) == 0 {
		ts.Fatalf("ticket names no node")
	}
	addr := t.Peers[0].NodeAddr()
	if bind {
		ts.Setenv(args[0], addr.Addrs[0])
	} else {
		ts.Setenv(args[0], addr.String())
	}
}

func cmdWaitCLI(ts *testscript.TestScript, neg bool, args []string) {
	var re *regexp.Regexp
	if len(args) >= 2 && args[0] == "-stdout" {
		var err error
		re, err = regexp.Compile("(?m)" + args[1])
		ts.Check(err)
		args = args[2:]
	}
	if neg || len(args) == 0 {
		ts.Fatalf("usage: waitcli [-stdout REGEXP] ARGS...")
	}
	var lastErr error
	ok := poll(func() bool {
		lastErr = ts.Exec("aspen-cli", args...)
		return lastErr == nil && (re == nil || re.MatchString(ts.ReadFile("stdout")))
	})
	if !ok {
		what := "exit 0"
		if re != nil {
			what += " with stdout matching " + strconv.Quote(re.String())
		}
		ts.Fatalf("aspen-cli %s: no %s within %s (last error: %v)", strings.Join(args, " "), what, waitTimeout, lastErr)
	}
}

func cmdJSONField(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: jsonfield PATH WANT")
	}
	got := jsonAt(ts, args[0])
	switch {
	case !neg && got != args[1]:
		ts.Fatalf("%s is %s, want %s", args[0], got, args[1])
	case neg && got == args[1]:
		ts.Fatalf("%s is %s, want anything else", args[0], got)
	}
}

func cmdJSONVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: jsonvar VAR PATH")
	}
	ts.Setenv(args[0], jsonAt(ts, args[1]))
}

// jsonAt returns the value at path in the JSON document on the last stdout,
// as text (see the package comment). A missing path fails the script.
func jsonAt(ts *testscript.TestScript, path string) string {
	dec := json.NewDecoder(strings.NewReader(ts.ReadFile("stdout")))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		ts.Fatalf("stdout is not a JSON document: %v", err)
	}
	if dec.More() {
		ts.Fatalf("stdout holds more than one JSON document")
	}
	for _, part := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[part]
			if !ok {
				ts.Fatalf("%s: no field %q", path, part)
			}
			v = next
		case []any:
			if part == "#" {
				v = json.Number(strconv.Itoa(len(x)))
				continue
			}
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				ts.Fatalf("%s: no element %q in an array of %d", path, part, len(x))
			}
			v = x[i]
		default:
			ts.Fatalf("%s: cannot take %q of %s", path, part, compact(v))
		}
	}
	if s, ok := v.(string); ok {
		return s
	}
	return compact(v)
}

func compact(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// repeated returns TEXT (with Go escapes) repeated N times.
func repeated(ts *testscript.TestScript, n, text string) string {
	count, err := strconv.Atoi(n)
	if err != nil || count < 0 {
		ts.Fatalf("bad count %q", n)
	}
	unq, err := strconv.Unquote(`"` + strings.ReplaceAll(text, `"`, `\"`) + `"`)
	if err != nil {
		ts.Fatalf("bad TEXT %q: %v", text, err)
	}
	return strings.Repeat(unq, count)
}

func cmdRepeat(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: repeat VAR N TEXT")
	}
	ts.Setenv(args[0], repeated(ts, args[1], args[2]))
}

func cmdRepeatFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: repeatfile FILE N TEXT")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(repeated(ts, args[1], args[2])), 0o644))
}

func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("bad exit status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}
