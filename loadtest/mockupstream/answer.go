package mockupstream

import (
	"bufio"
	"fmt"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/gateway/usage"
	"github.com/caracal-gw/caracal/internal/control"
)

// call is one answer to write: its ids, model and token counts.
type call struct {
	seq          int64
	created      int64
	model        string
	in, out      int64
	cacheW       int64 // prompt-cache writes and reads (Anthropic only),
	cacheR       int64 // on top of in
	chunks       int
	delay        time.Duration
	includeUsage bool
}

func (c *call) piece(i int) string { return fmt.Sprintf("tok%d ", i) }

func (c *call) text() string {
	t := ""
	for i := range c.chunks {
		t += c.piece(i)
	}
	return t
}

// flush sends what is buffered and waits between stream chunks; it reports false when the client is
// gone (the flush failed).
func (c *call) flush(w *bufio.Writer) bool {
	if err := w.Flush(); err != nil {
		return false
	}
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	return true
}

func (s *Server) answer(ctx *fasthttp.RequestCtx, ep Endpoint, seq int64) {
	p := control.OpenAI
	if ep == Messages {
		p = control.Anthropic
	}
	req := usage.InspectRequest(p, ctx.PostBody())
	st := s.stats.endpoint(ep)
	if !req.Object {
		st.clientErrors.Add(1)
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "body is not a JSON object")
		return
	}
	c := &call{
		seq: seq, created: time.Now().Unix(), model: safeModel(req.Model),
		in: req.InputTokens, out: s.opts.OutputTokens, chunks: s.opts.Chunks, delay: s.opts.ChunkDelay,
		includeUsage: req.IncludeUsage || !s.opts.RequireIncludeUsage,
	}
	if req.MaxTokens >= 0 && req.MaxTokens < c.out {
		c.out = req.MaxTokens
	}
	if ep == Messages {
		c.cacheW, c.cacheR = s.opts.CacheWriteTokens, s.opts.CacheReadTokens
	}
	st.ok.Add(1)
	st.in.Add(c.in + c.cacheW + c.cacheR)
	st.cacheW.Add(c.cacheW)
	st.cacheR.Add(c.cacheR)
	st.out.Add(c.out)
	if !req.Stream {
		ctx.SetContentType("application/json")
		ctx.SetBody(c.json(ep))
		return
	}
	st.streams.Add(1)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) { c.stream(ep, w) })
}

// safeModel echoes the request's model when it is a plain name.
func safeModel(m []byte) string {
	if len(m) == 0 || len(m) > 128 {
		return "mock-model"
	}
	for _, b := range m {
		ok := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_' || b == ':' || b == '/' || b == '@'
		if !ok {
			return "mock-model"
		}
	}
	return string(m)
}

func (c *call) json(ep Endpoint) []byte {
	switch ep {
	case Responses:
		return fmt.Appendf(nil, `{"id":"resp_mock%d","object":"response","created_at":%d,"status":"completed","model":%q,"output":[%s],"usage":%s}`,
			c.seq, c.created, c.model, c.responsesOutput(), c.responsesUsage())
	case Messages:
		return fmt.Appendf(nil, `{"id":"msg_mock%d","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":%q}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":%d,"cache_read_input_tokens":%d,"output_tokens":%d}}`,
			c.seq, c.model, c.text(), c.in, c.cacheW, c.cacheR, c.out)
	}
	return fmt.Appendf(nil, `{"id":"chatcmpl-mock%d","object":"chat.completion","created":%d,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q,"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":%s}`,
		c.seq, c.created, c.model, c.text(), c.chatUsage())
}

func (c *call) chatUsage() string {
	return fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`,
		c.in, c.out, c.in+c.out)
}

func (c *call) responsesUsage() string {
	return fmt.Sprintf(`{"input_tokens":%d,"input_tokens_details":{"cached_tokens":0},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":%d}`,
		c.in, c.out, c.in+c.out)
}

func (c *call) responsesOutput() string {
	return fmt.Sprintf(`{"type":"message","id":"msg_mock%d","status":"completed","role":"assistant","content":[{"type":"output_text","text":%q,"annotations":[]}]}`,
		c.seq, c.text())
}

func (c *call) stream(ep Endpoint, w *bufio.Writer) {
	switch ep {
	case Responses:
		c.streamResponses(w)
	case Messages:
		c.streamMessages(w)
	default:
		c.streamChat(w)
	}
}

func (c *call) streamChat(w *bufio.Writer) {
	head := fmt.Sprintf(`"id":"chatcmpl-mock%d","object":"chat.completion.chunk","created":%d,"model":%q`, c.seq, c.created, c.model)
	for i := range c.chunks {
		fmt.Fprintf(w, "data: {%s,\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}],\"usage\":null}\n\n", head, c.piece(i))
		if !c.flush(w) {
			return
		}
	}
	fmt.Fprintf(w, "data: {%s,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n", head)
	if c.includeUsage {
		fmt.Fprintf(w, "data: {%s,\"choices\":[],\"usage\":%s}\n\n", head, c.chatUsage())
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	w.Flush() //nolint:errcheck // the stream ends here either way
}

func (c *call) streamResponses(w *bufio.Writer) {
	fmt.Fprintf(w, "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_mock%d\",\"object\":\"response\",\"created_at\":%d,\"status\":\"in_progress\",\"model\":%q,\"output\":[],\"usage\":null}}\n\n",
		c.seq, c.created, c.model)
	if !c.flush(w) {
		return
	}
	for i := range c.chunks {
		fmt.Fprintf(w, "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":%d,\"item_id\":\"msg_mock%d\",\"output_index\":0,\"content_index\":0,\"delta\":%q}\n\n",
			i+1, c.seq, c.piece(i))
		if !c.flush(w) {
			return
		}
	}
	fmt.Fprintf(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":%d,\"response\":{\"id\":\"resp_mock%d\",\"object\":\"response\",\"created_at\":%d,\"status\":\"completed\",\"model\":%q,\"output\":[%s],\"usage\":%s}}\n\n",
		c.chunks+1, c.seq, c.created, c.model, c.responsesOutput(), c.responsesUsage())
	w.Flush() //nolint:errcheck // the stream ends here either way
}

func (c *call) streamMessages(w *bufio.Writer) {
	fmt.Fprintf(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock%d\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":%q,\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":%d,\"cache_creation_input_tokens\":%d,\"cache_read_input_tokens\":%d,\"output_tokens\":%d}}}\n\n",
		c.seq, c.model, c.in, c.cacheW, c.cacheR, min(c.out, 1))
	fmt.Fprint(w, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	if !c.flush(w) {
		return
	}
	for i := range c.chunks {
		fmt.Fprintf(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":%q}}\n\n", c.piece(i))
		if !c.flush(w) {
			return
		}
	}
	fmt.Fprint(w, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	fmt.Fprintf(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":%d}}\n\n", c.out)
	fmt.Fprint(w, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	w.Flush() //nolint:errcheck // the stream ends here either way
}
