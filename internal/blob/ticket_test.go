package blob

import (
	"errors"
	"strings"
	"testing"
)

func TestTicketRoundTrip(t *testing.T) {
	in := Ticket{Hash: Sum([]byte("x")), Cluster: "aspenexample"}
	s := in.String()
	if !strings.HasPrefix(s, TicketPrefix) || strings.ToLower(s) != s {
		t.Fatalf("ticket %q: want lowercase with prefix %q", s, TicketPrefix)
	}
	out, err := ParseTicket("  " + strings.ToUpper(s[:len(TicketPrefix)]) + s[len(TicketPrefix):] + "\n")
	if err == nil {
		t.Fatalf("ParseTicket accepted an upper-case prefix: %+v", out)
	}
	out, err = ParseTicket(" " + s + "\n")
	if err != nil || out != in {
		t.Fatalf("ParseTicket = %+v, %v; want %+v", out, err, in)
	}
	for _, bad := range []string{"", "aspen", TicketPrefix, TicketPrefix + "!!", TicketPrefix + "aaaa", s[:len(s)-3]} {
		if _, err := ParseTicket(bad); !errors.Is(err, ErrBadTicket) {
			t.Errorf("ParseTicket(%q) err = %v; want ErrBadTicket", bad, err)
		}
	}
}
