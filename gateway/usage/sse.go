package usage

import (
	"bytes"

	"github.com/caracal-gw/caracal/internal/control"
)

// MaxLine is the longest SSE line the Scanner buffers across chunks; a
// longer split line (a huge content delta) is skipped whole, which is safe
// because the usage events are short. A line that arrives whole within one
// chunk is read in place, whatever its length.
const MaxLine = 64 << 10

// Scanner extracts the token usage from a server-sent event stream fed in
// chunks of any size: OpenAI chat completions (the final chunk with usage,
// sent when stream_options.include_usage is true), OpenAI responses (the
// response.completed event's response.usage) and Anthropic messages
// (message_start's message.usage, then message_delta's cumulative usage).
//
// Its state is bounded (one MaxLine buffer, held inline) and Feed never
// allocates. A Scanner is about 64 KiB: pool it, and Reset it per stream.
type Scanner struct {
	p        control.Provider
	n        int  // bytes of the current line held in line
	skipping bool // the current line outgrew line and is being skipped
	done     bool
	skipped  int
	f        usageFields
	line     [MaxLine]byte
}

// NewScanner returns a Scanner for a stream of provider p.
func NewScanner(p control.Provider) *Scanner {
	s := &Scanner{}
	s.Reset(p)
	return s
}

// Reset prepares s for a new stream of provider p.
func (s *Scanner) Reset(p control.Provider) {
	s.p, s.n, s.skipping, s.done, s.skipped = p, 0, false, false, 0
	s.f = usageFields{}
}

// Usage returns the usage seen so far; ok is false when the stream carried
// none.
func (s *Scanner) Usage() (Usage, bool) {
	if !s.f.seen {
		return Usage{}, false
	}
	return s.f.usage(s.p), true
}

// Done reports whether the stream announced its end: "data: [DONE]",
// Anthropic's message_stop or a terminal responses event.
func (s *Scanner) Done() bool { return s.done }

// SkippedLines returns how many lines were longer than MaxLine.
func (s *Scanner) SkippedLines() int { return s.skipped }

// Feed reads the next chunk of the stream. It returns the flush point: the
// offset in chunk just past the last blank line that ended an event, or 0
// when no event ended in chunk. The proxy flushes its client writer once
// chunk[:flush] is written, so that events reach the client one by one.
func (s *Scanner) Feed(chunk []byte) (flush int) {
	off := 0
	for off < len(chunk) {
		idx := bytes.IndexByte(chunk[off:], '\n')
		if idx < 0 {
			s.buffer(chunk[off:])
			break
		}
		seg := chunk[off : off+idx]
		off += idx + 1
		line := seg
		if s.n > 0 || s.skipping {
			s.buffer(seg)
			line = s.line[:s.n]
		}
		skipping := s.skipping
		s.n, s.skipping = 0, false
		if skipping {
			continue
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			flush = off
			continue
		}
		s.handleLine(line)
	}
	return flush
}

func (s *Scanner) buffer(seg []byte) {
	if s.skipping {
		return
	}
	if s.n+len(seg) > MaxLine {
		s.skipping = true
		s.skipped++
		return
	}
	s.n += copy(s.line[s.n:], seg)
}

func (s *Scanner) handleLine(line []byte) {
	payload, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	if len(payload) > 0 && payload[0] == ' ' {
		payload = payload[1:]
	}
	if string(payload) == "[DONE]" {
		s.done = true
		return
	}
	s.handleData(payload)
}

// handleData reads one data payload: a usage object at the top level
// (OpenAI chat's final chunk, Anthropic's message_delta) or inside
// "message" (Anthropic's message_start) or "response" (OpenAI's
// response.completed).
func (s *Scanner) handleData(payload []byte) {
	o, _ := openObject(payload)
	var g usageFields
	for {
		key, val, _, ok := o.next()
		if !ok {
			break
		}
		switch {
		case keyIs(key, "usage"):
			g.read(val)
		case keyIs(key, "message"), keyIs(key, "response"):
			readNestedUsage(&g, val)
		case keyIs(key, "type"):
			s.done = s.done || isTerminalType(val)
		}
	}
	s.f.merge(&g)
}

func readNestedUsage(g *usageFields, val []byte) {
	o, _ := openObject(val)
	for {
		key, v, _, ok := o.next()
		if !ok {
			return
		}
		if keyIs(key, "usage") {
			g.read(v)
		}
	}
}

func isTerminalType(v []byte) bool {
	switch string(v) {
	case `"message_stop"`, `"response.completed"`, `"response.incomplete"`, `"response.failed"`:
		return true
	}
	return false
}
