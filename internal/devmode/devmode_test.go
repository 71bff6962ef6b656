package devmode

import (
	"path/filepath"
	"testing"
)

func TestDataDir(t *testing.T) {
	tests := []struct {
		name    string
		devDir  string
		xdgData string
		home    string
		want    string
	}{
		{name: "ASPEN_DEV_DIR wins", devDir: "/srv/dev", xdgData: "/xdg", home: "/home/u", want: "/srv/dev"},
		{name: "XDG_DATA_HOME", xdgData: "/xdg", home: "/home/u", want: "/xdg/aspen/dev"},
		{name: "relative XDG_DATA_HOME ignored", xdgData: "rel", home: "/home/u", want: "/home/u/.local/share/aspen/dev"},
		{name: "home", home: "/home/u", want: "/home/u/.local/share/aspen/dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("ASPEN_DEV_DIR", tt.devDir)
			t.Setenv("XDG_DATA_HOME", tt.xdgData)
			t.Setenv("HOME", tt.home)
			if got := DataDir(); got != tt.want {
				t.Errorf("DataDir() = %q, want %q", got, tt.want)
			}
			if got, want := TicketPath(), filepath.Join(tt.want, "cluster-ticket.txt"); got != want {
				t.Errorf("TicketPath() = %q, want %q", got, want)
			}
		})
	}
}
