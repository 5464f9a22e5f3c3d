package budget

import (
	"errors"

	"github.com/caracal-gw/caracal/internal/control"
	"github.com/caracal-gw/caracal/internal/event"
)

// Code is the outcome of Leaser.Take.
type Code uint8

const (
	// OK: the estimate was taken from the local lease; Settle the ticket.
	OK Code = iota
	// Exhausted: a window of the agent or an ancestor has no headroom for
	// the estimate (answer 402/429 budget_exceeded).
	Exhausted
	// Unavailable: Redis could not be asked and the local lease cannot pay
	// (answer 503; never forward unmetered).
	Unavailable
)

var (
	// ErrExhausted is Status.Err for Exhausted.
	ErrExhausted = errors.New("budget exceeded")
	// ErrUnavailable is Status.Err for Unavailable.
	ErrUnavailable = errors.New("budget store unavailable")
)

// Status says why Take answered as it did.
type Status struct {
	Code Code
	// Remaining is the headroom known to be left: for OK, what this
	// gateway's lease holds after the request plus what Redis had left
	// outside leases at the last refill; for Exhausted, what could still
	// be granted (less than the estimate). For X-Caracal-Budget-Remaining.
	Remaining int64
	// Agent, Window, Rolling and Limit name the policy whose window bound
	// the last grant (zero Window when no policy limits the chain).
	Agent   event.UUID
	Window  control.Window
	Rolling bool
	Limit   int64
}

// Err returns nil, ErrExhausted or ErrUnavailable.
func (s Status) Err() error {
	switch s.Code {
	case OK:
		return nil
	case Exhausted:
		return ErrExhausted
	}
	return ErrUnavailable
}
