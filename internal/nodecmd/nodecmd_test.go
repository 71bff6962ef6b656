package nodecmd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "aspen.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `
node_id = 7
cookie = "from-file"
data_dir = "/file"
bind = "127.0.0.1:1111"
http_addr = "127.0.0.1:2222"
`)
	t.Setenv("ASPEN_DATA_DIR", "/env")
	t.Setenv("ASPEN_BIND", "127.0.0.1:3333")
	cfg, dev, _, err := load([]string{"--config", file, "--bind", "127.0.0.1:4444"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if dev {
		t.Fatal("dev mode without --dev")
	}
	checks := []struct{ name, got, want string }{
		{"cookie (file only)", cfg.Cookie, "from-file"},
		{"data dir (env over file)", cfg.DataDir, "/env"},
		{"bind (flag over env)", cfg.Bind, "127.0.0.1:4444"},
		{"http addr (file)", cfg.HTTPAddr, "127.0.0.1:2222"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.NodeID != 7 {
		t.Errorf("node id = %d, want 7 from the file", cfg.NodeID)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"empty cookie", []string{"--node-id", "1", "--data-dir", "/d"}, nil, "--cookie is required"},
		{"unsafe cookie", []string{"--node-id", "1", "--data-dir", "/d", "--cookie", "aspen-cookie-UNSAFE-CHANGE-ME"}, nil, "placeholder"},
		{"no node id", []string{"--cookie", "c", "--data-dir", "/d"}, nil, "--node-id is required"},
		{"bad bind", []string{"--node-id", "1", "--cookie", "c", "--data-dir", "/d", "--bind", "nope"}, nil, "--bind"},
		{"bad env number", []string{"--cookie", "c", "--data-dir", "/d"}, map[string]string{"ASPEN_NODE_ID": "one"}, "ASPEN_NODE_ID"},
		{"stray argument", []string{"--node-id", "1", "--cookie", "c", "--data-dir", "/d", "extra"}, nil, "unexpected argument"},
		{"join with restore", []string{"--node-id", "1", "--cookie", "c", "--data-dir", "/d", "--join", "t", "--restore-from", "f"}, nil, "mutually exclusive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, _, _, err := load(tt.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigFileRejectsUnknownKeys(t *testing.T) {
	file := writeConfig(t, "node_id = 1\ncookie = \"c\"\ndata_dir = \"/d\"\nbind_adress = \"x\"\n")
	_, _, _, err := load([]string{"--config", file}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "bind_adress") {
		t.Fatalf("err = %v, want it to name the unknown key", err)
	}
}

func TestDevDefaults(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ASPEN_DEV_DIR", dir)
	cfg, dev, _, err := load([]string{"--dev"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !dev || cfg.NodeID != 1 || cfg.DataDir != dir || !cfg.Init || cfg.Cookie == "" {
		t.Fatalf("dev config = %+v", cfg)
	}
	again, _, _, err := load([]string{"--dev"}, &bytes.Buffer{})
	if err != nil || again.Cookie != cfg.Cookie {
		t.Fatalf("dev cookie changed between runs: %q then %q (%v)", cfg.Cookie, again.Cookie, err)
	}
}

func TestHelpExitsZero(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Run([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	if !strings.Contains(errb.String(), "aspen-node --dev") {
		t.Fatalf("help does not teach the quick start:\n%s", errb.String())
	}
}
