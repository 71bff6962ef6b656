package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/aspen-dev/aspen/api"
)

// PrefixBarrier is the key prefix of the barriers' records.
const PrefixBarrier = "__coord:barrier:"

// barrierRecord is the JSON record of a double barrier at
// PrefixBarrier+name. Participants are those inside (entered, not yet
// left); Left are those that left during the leaving phase. The record is
// deleted when the last participant leaves, so the next enter starts a new
// round.
type barrierRecord struct {
	RequiredCount int      `json:"required_count"`
	Phase         string   `json:"phase"`
	Participants  []string `json:"participants"`
	Left          []string `json:"left,omitempty"`
}

func decodeBarrier(kv *api.KeyValue) (*barrierRecord, error) {
	if kv == nil {
		return nil, nil
	}
	var r barrierRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return nil, corrupt(kv.Key, err)
	}
	return &r, nil
}

// barrierAnswer describes r (nil: no barrier).
func barrierAnswer(r *barrierRecord) api.BarrierResponse {
	if r == nil {
		return api.BarrierResponse{Phase: api.BarrierWaiting}
	}
	return api.BarrierResponse{CurrentCount: len(r.Participants), RequiredCount: r.RequiredCount, Phase: r.Phase}
}

// barrierChange is what a barrier decision does to the record.
type barrierChange int

const (
	barrierKeep barrierChange = iota
	barrierPut
	barrierDelete
)

// decideBarrierEnter: a participant joins a barrier in the waiting phase
// (creating it when absent); when count participants are inside the
// barrier is ready. The caller succeeds once the barrier is ready (or
// leaving) with it inside; before that the answer is pending. Entering
// with a different count, or entering a barrier that is already full,
// is refused.
func decideBarrierEnter(cur *barrierRecord, participant string, count int) (*barrierRecord, barrierChange, api.BarrierResponse) {
	if cur == nil {
		cur = &barrierRecord{RequiredCount: count, Phase: api.BarrierWaiting}
	}
	if cur.RequiredCount != count {
		r := barrierAnswer(cur)
		r.Error = fmt.Sprintf("barrier requires %d participants, not %d", cur.RequiredCount, count)
		return nil, barrierKeep, r
	}
	inside := slices.Contains(cur.Participants, participant)
	if cur.Phase != api.BarrierWaiting {
		r := barrierAnswer(cur)
		switch {
		case inside:
			r.IsSuccess = true
		case cur.Phase == api.BarrierLeaving:
			r.Error = "barrier is in its leaving phase; enter again when it is over"
		default:
			r.Error = fmt.Sprintf("barrier is full (%d participants entered)", len(cur.Participants))
		}
		return nil, barrierKeep, r
	}
	if inside {
		r := barrierAnswer(cur)
		r.Pending = true
		r.Error = fmt.Sprintf("waiting for %d more participant(s)", cur.RequiredCount-len(cur.Participants))
		return nil, barrierKeep, r
	}
	next := *cur
	next.Participants = append(slices.Clip(cur.Participants), participant)
	if len(next.Participants) >= next.RequiredCount {
		next.Phase = api.BarrierReady
	}
	r := barrierAnswer(&next)
	if next.Phase == api.BarrierReady {
		r.IsSuccess = true
	} else {
		r.Pending = true
		r.Error = fmt.Sprintf("waiting for %d more participant(s)", next.RequiredCount-len(next.Participants))
	}
	return &next, barrierPut, r
}

// decideBarrierLeave: a participant leaves. Leaving a waiting barrier
// withdraws the participant at once. Leaving a ready or leaving barrier
// starts (or continues) the leaving phase; the caller succeeds when no
// participant is left inside, and the record is then deleted. A caller
// that already left gets pending until then, and success once the record
// is gone (or a new round began without it).
func decideBarrierLeave(cur *barrierRecord, participant string) (*barrierRecord, barrierChange, api.BarrierResponse) {
	if cur == nil {
		return nil, barrierKeep, api.BarrierResponse{IsSuccess: true, Phase: api.BarrierLeaving}
	}
	inside := slices.Contains(cur.Participants, participant)
	if !inside {
		r := barrierAnswer(cur)
		switch {
		case cur.Phase == api.BarrierLeaving && slices.Contains(cur.Left, participant):
			r.Pending = true
			r.Error = fmt.Sprintf("waiting for %d participant(s) to leave", len(cur.Participants))
		case cur.Phase == api.BarrierWaiting:
			// A new round: the caller's round is over.
			r.IsSuccess = true
		default:
			r.Error = fmt.Sprintf("%s is not a participant of the barrier", participant)
		}
		return nil, barrierKeep, r
	}
	next := *cur
	next.Participants = slices.DeleteFunc(slices.Clone(cur.Participants), func(p string) bool { return p == participant })
	if cur.Phase == api.BarrierWaiting {
		if len(next.Participants) == 0 {
			r := barrierAnswer(&next)
			r.IsSuccess = true
			return nil, barrierDelete, r
		}
		r := barrierAnswer(&next)
		r.IsSuccess = true
		return &next, barrierPut, r
	}
	next.Phase = api.BarrierLeaving
	next.Left = append(slices.Clip(cur.Left), participant)
	r := barrierAnswer(&next)
	if len(next.Participants) == 0 {
		r.IsSuccess = true
		return nil, barrierDelete, r
	}
	r.Pending = true
	r.Error = fmt.Sprintf("waiting for %d participant(s) to leave", len(next.Participants))
	return &next, barrierPut, r
}

// barrierStep runs decide on the barrier's record in a compare-and-swap
// step; unlike recordStep it can delete the record.
func (s *Service) barrierStep(ctx context.Context, op string, req *api.BarrierRequest, decide func(cur *barrierRecord) (*barrierRecord, barrierChange, api.BarrierResponse)) (*api.BarrierResponse, error) {
	key, err := recordKey(PrefixBarrier, "name", req.Name)
	if err != nil {
		return nil, err
	}
	if err := checkParticipant(req.Participant); err != nil {
		return nil, err
	}
	var out api.BarrierResponse
	err = s.update(ctx, key, func(kv *api.KeyValue, _ int64) ([]api.TxnOp, error) {
		cur, err := decodeBarrier(kv)
		if err != nil {
			return nil, err
		}
		next, change, resp := decide(cur)
		out = resp
		switch change {
		case barrierPut:
			b, err := json.Marshal(next)
			if err != nil {
				return nil, err
			}
			return []api.TxnOp{put(key, b)}, nil
		case barrierDelete:
			return []api.TxnOp{{Kind: api.TxnDelete, Key: key}}, nil
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	out.Operation, out.Name = op, req.Name
	return &out, nil
}

func checkParticipant(p string) error {
	if p == "" {
		return api.Errorf(api.CodeInvalidArgument, "participant is empty")
	}
	if len(p) > api.MaxHolderIDSize {
		return api.Errorf(api.CodeInvalidArgument, "participant is %d bytes; the limit is %d", len(p), api.MaxHolderIDSize)
	}
	return nil
}

// BarrierEnter enters a barrier: one step of the client's wait.
func (s *Service) BarrierEnter(ctx context.Context, req *api.BarrierRequest) (*api.BarrierResponse, error) {
	if req.Count < 1 || req.Count > api.MaxBarrierCount {
		return nil, api.Errorf(api.CodeInvalidArgument, "count is %d; want 1..%d", req.Count, api.MaxBarrierCount)
	}
	return s.barrierStep(ctx, "enter", req, func(cur *barrierRecord) (*barrierRecord, barrierChange, api.BarrierResponse) {
		return decideBarrierEnter(cur, req.Participant, req.Count)
	})
}

// BarrierLeave leaves a barrier: one step of the client's wait.
func (s *Service) BarrierLeave(ctx context.Context, req *api.BarrierRequest) (*api.BarrierResponse, error) {
	return s.barrierStep(ctx, "leave", req, func(cur *barrierRecord) (*barrierRecord, barrierChange, api.BarrierResponse) {
		return decideBarrierLeave(cur, req.Participant)
	})
}

// BarrierStatus describes a barrier; one that does not exist is waiting
// with no participants.
func (s *Service) BarrierStatus(ctx context.Context, req *api.BarrierRequest) (*api.BarrierResponse, error) {
	key, err := recordKey(PrefixBarrier, "name", req.Name)
	if err != nil {
		return nil, err
	}
	kv, err := s.b.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	cur, err := decodeBarrier(kv)
	if err != nil {
		return nil, err
	}
	out := barrierAnswer(cur)
	out.Operation, out.Name, out.IsSuccess = "status", req.Name, true
	return &out, nil
}
