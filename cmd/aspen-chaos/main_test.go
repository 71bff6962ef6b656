package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"unknown nemesis", []string{"--nemesis", "leader-isolate,nope"}, `unknown nemesis "nope"`},
		{"no nodes", []string{"--nodes", "0"}, "--nodes 0"},
		{"bad duration", []string{"--duration", "-1s"}, "--duration"},
		{"no clients", []string{"--clients", "0"}, "--clients 0"},
		{"stray argument", []string{"extra"}, `unexpected argument "extra"`},
		{"unknown flag", []string{"--bogus"}, "bogus"},
		{"in-process nemesis with --process", []string{"--process", "--nemesis", "split"}, `unknown nemesis "split"`},
		{"negative timed", []string{"--timed", "-1"}, "--timed -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if got := run(tc.args, &out, &errOut); got != exitUsage {
				t.Errorf("exit %d, want %d", got, exitUsage)
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("stderr %q does not mention %q", errOut.String(), tc.want)
			}
		})
	}
}

// TestRunJSON runs a tiny campaign with --json: stdout is one JSON object.
func TestRunJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"--nodes", "3", "--duration", "1s", "--hold", "500ms", "--quiet", "200ms",
		"--nemesis", "clock-jump", "--seed", "2", "--clients", "2", "--json"}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	var r result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out.String())
	}
	if r.Verdict != "PASS" || r.Seed != 2 || r.Register.OK == 0 || r.Register.Linearizable != "Ok" || len(r.Faults) == 0 {
		t.Errorf("unexpected result: %+v", r)
	}
	if !strings.Contains(errOut.String(), "fault ") {
		t.Errorf("progress lines are not on stderr: %q", errOut.String())
	}
}

// TestRunShortCampaign runs a tiny campaign end to end.
func TestRunShortCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"--nodes", "3", "--duration", "2s", "--hold", "700ms", "--quiet", "300ms",
		"--nemesis", "leader-isolate,split", "--seed", "1", "--clients", "3", "--print-ops"}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	for _, want := range []string{"fault ", "op client ", "register history:", "counter:", "timed:", "verdict: PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
