package loadtest

import (
	"errors"
	"net"
	"os"
	"strings"

	"github.com/valyala/fasthttp"
)

// Class is a kind of failed request.
type Class uint8

const (
	// ClassConnect: the connection could not be made or was refused.
	ClassConnect Class = iota
	// ClassTimeout: no answer within the timeout (waiting for a connection included).
	ClassTimeout
	// ClassOverload: the generator had MaxInFlight requests outstanding, so
	// this scheduled request was not sent (the server is not keeping up).
	ClassOverload
	// ClassOther: any other transport error (connection reset, bad answer).
	ClassOther
	numClasses
)

var classNames = [numClasses]string{"connect", "timeout", "overload", "other"}

func (c Class) String() string { return classNames[c] }

// classify maps a transport error to its class.
func classify(err error) Class {
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, os.ErrDeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, fasthttp.ErrDialTimeout):
		return ClassConnect
	case errors.As(err, &oe) && oe.Op == "dial":
		return ClassConnect
	case errors.As(err, &ne) && ne.Timeout():
		return ClassTimeout
	case strings.Contains(err.Error(), "dial"), strings.Contains(err.Error(), "connection refused"):
		return ClassConnect
	}
	return ClassOther
}
