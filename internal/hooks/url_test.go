package hooks

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aspen-dev/aspen/internal/ticket"
)

func testURL() URL {
	var p ticket.Peer
	p.Key[0] = 7
	p.Addrs = []string{"127.0.0.1:4701"}
	return URL{ClusterID: "c1", Peers: []ticket.Peer{p}, EventType: "write_committed", Payload: []byte(`{"a":1}`), Token: make([]byte, TokenSize), Expires: time.Now().Add(time.Hour).Unix()}
}

func TestURLRoundTrip(t *testing.T) {
	u := testURL()
	s := u.String()
	if !strings.HasPrefix(s, "aspenhook") {
		t.Fatalf("URL %q does not start with aspenhook", s)
	}
	got, err := ParseURL(s, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got.ClusterID != u.ClusterID || got.EventType != u.EventType || string(got.Payload) != string(u.Payload) || got.Expires != u.Expires || got.Peers[0].Key != u.Peers[0].Key || got.Peers[0].Addrs[0] != u.Peers[0].Addrs[0] {
		t.Errorf("ParseURL(String()) = %+v; want %+v", got, u)
	}
}

func TestURLInvalid(t *testing.T) {
	past := testURL()
	past.Expires = time.Now().Add(-time.Second).Unix()
	if _, err := ParseURL(past.String(), time.Now()); !errors.Is(err, ErrExpired) {
		t.Errorf("expired URL: %v; want ErrExpired", err)
	}
	never := testURL()
	never.Expires = 0
	if _, err := ParseURL(never.String(), time.Now().Add(1000*time.Hour)); err != nil {
		t.Errorf("URL without expiry: %v", err)
	}
	for name, mut := range map[string]func(*URL){
		"not core":     func(u *URL) { u.EventType = "ref_updated" },
		"bad payload":  func(u *URL) { u.Payload = []byte("{bad") },
		"short token":  func(u *URL) { u.Token = []byte{1} },
		"no peers":     func(u *URL) { u.Peers = nil },
		"big payload":  func(u *URL) { u.Payload = []byte(`"` + strings.Repeat("x", 5000) + `"`) },
		"no cluster":   func(u *URL) { u.ClusterID = "" },
		"many peers":   func(u *URL) { u.Peers = make([]ticket.Peer, 17) },
		"peer no addr": func(u *URL) { u.Peers[0].Addrs = nil },
	} {
		u := testURL()
		mut(&u)
		if _, err := ParseURL(u.String(), time.Now()); err == nil {
			t.Errorf("%s: ParseURL succeeded", name)
		}
	}
	for _, s := range []string{"", "aspen", "aspenhook!!", "aspenhookaaaa", "http://x"} {
		if _, err := ParseURL(s, time.Now()); err == nil {
			t.Errorf("ParseURL(%q) succeeded", s)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	u := testURL()
	f.Add(u.String())
	f.Add("aspenhook")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseURL(s, time.Unix(0, 0))
		if err != nil {
			return
		}
		if _, err := ParseURL(got.String(), time.Unix(0, 0)); err != nil {
			t.Errorf("re-encoded URL does not parse: %v", err)
		}
	})
}
