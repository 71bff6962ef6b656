package coord

import (
	"strings"
	"testing"

	"github.com/aspen-dev/aspen/api"
)

// TestDecideBarrierRound walks one double-barrier round of three
// participants through enter and leave.
func TestDecideBarrierRound(t *testing.T) {
	var cur *barrierRecord
	step := func(next *barrierRecord, ch barrierChange) {
		t.Helper()
		switch ch {
		case barrierPut:
			if next == nil {
				t.Fatal("put without a record")
			}
			cur = next
		case barrierDelete:
			cur = nil
		}
	}
	enter := func(p string, wantOK, wantPending bool, wantPhase string, wantCount int) {
		t.Helper()
		next, ch, r := decideBarrierEnter(cur, p, 3)
		if r.IsSuccess != wantOK || r.Pending != wantPending || r.Phase != wantPhase || r.CurrentCount != wantCount {
			t.Fatalf("enter %s = %+v; want ok=%v pending=%v phase=%s count=%d", p, r, wantOK, wantPending, wantPhase, wantCount)
		}
		step(next, ch)
	}
	leave := func(p string, wantOK, wantPending bool, wantPhase string) {
		t.Helper()
		next, ch, r := decideBarrierLeave(cur, p)
		if r.IsSuccess != wantOK || r.Pending != wantPending || r.Phase != wantPhase {
			t.Fatalf("leave %s = %+v; want ok=%v pending=%v phase=%s", p, r, wantOK, wantPending, wantPhase)
		}
		step(next, ch)
	}
	enter("a", false, true, api.BarrierWaiting, 1)
	enter("a", false, true, api.BarrierWaiting, 1) // a poll changes nothing
	enter("b", false, true, api.BarrierWaiting, 2)
	if _, _, r := decideBarrierEnter(cur, "c", 4); r.IsSuccess || r.Pending || !strings.Contains(r.Error, "requires 3") {
		t.Fatalf("count mismatch = %+v", r)
	}
	enter("c", true, false, api.BarrierReady, 3)
	enter("a", true, false, api.BarrierReady, 3) // the poll of a waiter now succeeds
	if _, _, r := decideBarrierEnter(cur, "d", 3); r.IsSuccess || !strings.Contains(r.Error, "full") {
		t.Fatalf("enter of a full barrier = %+v", r)
	}
	if _, _, r := decideBarrierLeave(cur, "d"); r.IsSuccess || !strings.Contains(r.Error, "not a participant") {
		t.Fatalf("leave by a stranger = %+v", r)
	}
	leave("a", false, true, api.BarrierLeaving)
	leave("a", false, true, api.BarrierLeaving) // poll
	enter("b", true, false, api.BarrierLeaving, 2)
	if _, _, r := decideBarrierEnter(cur, "d", 3); r.IsSuccess || !strings.Contains(r.Error, "leaving phase") {
		t.Fatalf("enter while leaving = %+v", r)
	}
	leave("b", false, true, api.BarrierLeaving)
	leave("c", true, false, api.BarrierLeaving)
	if cur != nil {
		t.Fatalf("record after the last leave: %+v", cur)
	}
	leave("a", true, false, api.BarrierLeaving) // the round is over
}

func TestDecideBarrierSmall(t *testing.T) {
	next, ch, r := decideBarrierEnter(nil, "a", 1)
	if !r.IsSuccess || r.Phase != api.BarrierReady || ch != barrierPut {
		t.Fatalf("enter count 1 = %+v", r)
	}
	if _, ch, r := decideBarrierLeave(next, "a"); !r.IsSuccess || ch != barrierDelete {
		t.Fatalf("leave count 1 = %+v, %v", r, ch)
	}
	// Leaving a waiting barrier withdraws; the last one out deletes it.
	next, _, _ = decideBarrierEnter(nil, "a", 2)
	if _, ch, r := decideBarrierLeave(next, "a"); !r.IsSuccess || ch != barrierDelete {
		t.Fatalf("withdraw = %+v, %v", r, ch)
	}
	// A new round does not hold up a leaver of the previous one.
	if _, ch, r := decideBarrierLeave(next, "z"); !r.IsSuccess || ch != barrierKeep {
		t.Fatalf("leave of an old round = %+v, %v", r, ch)
	}
}

func TestDecideServiceRegistry(t *testing.T) {
	const now = 1000
	req := &api.ServiceRequest{Address: "10.0.0.1:80", Version: "1.2.0", Tags: []string{"a", "b"}, Weight: 100, TTLMs: 500}
	rec, r := decideServiceRegister(nil, req, now)
	if !r.IsSuccess || r.FencingToken != 1 || rec.DeadlineMs != now+500 || rec.Health != api.ServiceHealthy {
		t.Fatalf("register = %+v %+v", r, rec)
	}
	rec2, r := decideServiceRegister(rec, req, now+10)
	if r.FencingToken != 2 || rec2.FencingToken != 2 {
		t.Fatalf("re-register token = %d", r.FencingToken)
	}

	// Stale token, heartbeat, expiry.
	if next, r := decideServiceChange(rec2, "heartbeat", &api.ServiceRequest{FencingToken: 1}, now+20); next != nil || !strings.Contains(r.Error, "fencing token mismatch") {
		t.Fatalf("stale heartbeat = %+v", r)
	}
	hb, r := decideServiceChange(rec2, "heartbeat", &api.ServiceRequest{FencingToken: 2}, now+400)
	if !r.IsSuccess || hb.DeadlineMs != now+900 || hb.LastHeartbeatMs != now+400 {
		t.Fatalf("heartbeat = %+v %+v", r, hb)
	}
	if next, r := decideServiceChange(hb, "heartbeat", &api.ServiceRequest{FencingToken: 2}, now+900); next != nil || !strings.Contains(r.Error, "expired") {
		t.Fatalf("heartbeat after expiry = %+v", r)
	}
	if in := hb.instance("s", "i", now+899); !in.Healthy || in.Health != api.ServiceHealthy {
		t.Errorf("live instance = %+v", in)
	}
	if in := hb.instance("s", "i", now+900); in.Healthy || in.Health != api.ServiceUnhealthy {
		t.Errorf("expired instance = %+v", in)
	}

	// Health and update.
	un, r := decideServiceChange(hb, "health", &api.ServiceRequest{FencingToken: 2, Health: api.ServiceUnhealthy}, now+500)
	if !r.IsSuccess || un.instance("s", "i", now+500).Healthy {
		t.Fatalf("health = %+v", r)
	}
	up, _ := decideServiceChange(hb, "update", &api.ServiceRequest{FencingToken: 2, Version: "2.0.0", SetTags: true, Tags: []string{"c"}}, now+500)
	if up.Version != "2.0.0" || len(up.Tags) != 1 || up.Weight != 100 {
		t.Fatalf("update = %+v", up)
	}

	// Deregister keeps the token (also when expired); a new registration gets a larger one.
	if next, r := decideServiceChange(hb, "deregister", &api.ServiceRequest{FencingToken: 1}, now); next != nil || r.IsSuccess {
		t.Fatalf("stale deregister = %+v", r)
	}
	gone, r := decideServiceChange(hb, "deregister", &api.ServiceRequest{FencingToken: 2}, now+5000)
	if !r.IsSuccess || gone.registered() || gone.FencingToken != 2 {
		t.Fatalf("deregister = %+v %+v", r, gone)
	}
	if next, r := decideServiceChange(gone, "heartbeat", &api.ServiceRequest{FencingToken: 2}, now); next != nil || r.Error != "instance not registered" {
		t.Fatalf("heartbeat after deregister = %+v", r)
	}
	if _, r := decideServiceRegister(gone, req, now); r.FencingToken != 3 {
		t.Fatalf("token after deregister = %d", r.FencingToken)
	}
}

func TestServiceMatches(t *testing.T) {
	in := &api.ServiceInstance{Version: "1.2.3", Tags: []string{"a", "b"}, Healthy: false}
	tests := []struct {
		req  api.ServiceRequest
		want bool
	}{
		{api.ServiceRequest{}, true},
		{api.ServiceRequest{HealthyOnly: true}, false},
		{api.ServiceRequest{VersionPrefix: "1.2"}, true},
		{api.ServiceRequest{VersionPrefix: "2"}, false},
		{api.ServiceRequest{Tags: []string{"b", "a"}}, true},
		{api.ServiceRequest{Tags: []string{"a", "c"}}, false},
	}
	for _, tt := range tests {
		if got := serviceMatches(in, &tt.req); got != tt.want {
			t.Errorf("serviceMatches(%+v) = %v, want %v", tt.req, got, tt.want)
		}
	}
	if err := checkServiceName("a:b"); err == nil {
		t.Error("service name with ':' accepted")
	}
	tags := make([]string, api.MaxServiceTags+1)
	for i := range tags {
		tags[i] = "t"
	}
	if err := checkTags(tags); err == nil {
		t.Error("33 tags accepted")
	}
}
