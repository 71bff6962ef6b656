package faults

import (
	"testing"
	"time"
)

func TestClockOffsets(t *testing.T) {
	var c Clock
	now := c.For(1)
	if d := time.Until(now()); d > time.Second || d < -time.Second {
		t.Fatalf("fresh clock is %v off the real time", d)
	}
	c.Set(1, time.Hour)
	c.Set(2, -time.Hour)
	if d := time.Until(now()); d < 59*time.Minute {
		t.Fatalf("node 1 jumped forward an hour reads %v ahead", d)
	}
	if d := time.Until(c.For(2)()); d > -59*time.Minute {
		t.Fatalf("node 2 stepped back an hour reads %v ahead", d)
	}
	if c.Offset(3) != 0 {
		t.Fatalf("untouched node 3 has offset %v", c.Offset(3))
	}
	c.Reset()
	if c.Offset(1) != 0 || c.Offset(2) != 0 {
		t.Fatal("Reset left offsets")
	}
}
