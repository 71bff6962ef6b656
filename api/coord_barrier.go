package api

// Operation names of the barriers. Waiting (enter until ready, leave until
// all left) is a client-side loop over these steps (see package
// coordination).
const (
	OpBarrierEnter  = "barrier.enter"
	OpBarrierLeave  = "barrier.leave"
	OpBarrierStatus = "barrier.status"
)

// MaxBarrierCount is the largest number of participants of one barrier.
const MaxBarrierCount = 1024

// Barrier phases.
const (
	BarrierWaiting = "waiting" // fewer than required_count participants have entered
	BarrierReady   = "ready"   // all have entered, none has left yet
	BarrierLeaving = "leaving" // some have left; the record goes when the last leaves
)

// BarrierRequest is the request of every barrier operation. Count (the
// number of participants) is needed by enter.
type BarrierRequest struct {
	Name        string `cbor:"name" json:"name"`
	Participant string `cbor:"participant,omitempty" json:"participant,omitempty"`
	Count       int    `cbor:"count,omitempty" json:"count,omitempty"`
}

// BarrierResponse is the answer of every barrier operation. Pending means
// the step was taken but the caller must wait (enter: for more
// participants; leave: for the others to leave) and should ask again.
type BarrierResponse struct {
	Operation     string `cbor:"operation" json:"operation"`
	Name          string `cbor:"name" json:"name"`
	IsSuccess     bool   `cbor:"is_success" json:"is_success"`
	CurrentCount  int    `cbor:"current_count" json:"current_count"`
	RequiredCount int    `cbor:"required_count" json:"required_count"`
	Phase         string `cbor:"phase" json:"phase"`
	Pending       bool   `cbor:"pending,omitempty" json:"pending,omitempty"`
	Error         string `cbor:"error,omitempty" json:"error,omitempty"`
}
