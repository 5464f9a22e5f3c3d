// Package loadtest is an open-loop HTTP load generator: requests are sent at
// a constant arrival rate whatever the server does, and each latency is
// measured from the time the request was scheduled, so queueing in the
// client or the server shows up in the percentiles instead of being hidden
// (the coordinated-omission trap of closed-loop tools such as wrk).
package loadtest

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config describes one run. Every run is bounded both in time and in count.
type Config struct {
	// URL is the target, http or https.
	URL    string
	Method string
	// Body is sent with every request; Key, when set, as "Authorization: Bearer Key".
	Body        []byte
	Key         string
	ContentType string
	// Stream asks for an SSE answer (Accept: text/event-stream); the latency
	// is then the time to the last byte of the stream.
	Stream bool
	// Rate is the arrival rate in requests per second.
	Rate float64
	// Duration bounds the schedule; MaxRequests bounds the count (0: Rate·Duration).
	Duration    time.Duration
	MaxRequests int64
	// Connections is the number of keep-alive connections (one HostClient each).
	Connections int
	// MaxInFlight bounds the requests outstanding at once; a scheduled
	// request beyond it is counted as an "overload" error, not delayed.
	MaxInFlight int
	// Timeout bounds each request, waiting for a connection included.
	Timeout time.Duration
	// Insecure skips TLS certificate verification (self-signed benches).
	Insecure bool
	// Progress, when set, is called about once a second with the counters so far.
	Progress func(Snapshot)
}

func (c *Config) validate() error {
	if c.URL == "" {
		return errors.New("cannot run: no URL")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("cannot run: bad URL %q (want http:// or https://host:port/path)", c.URL)
	}
	if c.Rate <= 0 || c.Duration <= 0 {
		return errors.New("cannot run: rate and duration must be positive")
	}
	if c.Connections <= 0 {
		c.Connections = 16
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 10_000
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Method == "" {
		c.Method = "POST"
		if len(c.Body) == 0 {
			c.Method = "GET"
		}
	}
	if c.ContentType == "" {
		c.ContentType = "application/json"
	}
	planned := int64(c.Rate * c.Duration.Seconds())
	if c.MaxRequests <= 0 || c.MaxRequests > planned {
		c.MaxRequests = max(planned, 1)
	}
	return nil
}
