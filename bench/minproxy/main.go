// Command minproxy is the ceiling for "Go + fasthttp doing nothing": a
// reverse proxy that copies the request to one keep-alive upstream and the
// answer back, with no header hygiene, auth or metering. -raw switches its
// sockets to internal/rawconn (the peer "minproxy-raw" of scripts/peers/run.sh).
package main

import (
	"flag"
	"log"
	"net"
	"time"

	"github.com/caracal-gw/caracal/internal/rawconn"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18001", "address")
	upstream := flag.String("upstream", "127.0.0.1:18000", "upstream host:port")
	cert := flag.String("cert", "", "TLS certificate (PEM); plaintext when empty")
	key := flag.String("key", "", "TLS key (PEM)")
	raw := flag.Bool("raw", false, "raw socket reads and writes (internal/rawconn) on both sides")
	flag.Parse()
	up := &fasthttp.HostClient{Addr: *upstream, MaxConns: 4096, MaxIdleConnDuration: time.Minute}
	if *raw {
		up.Dial = func(addr string) (net.Conn, error) {
			c, err := fasthttp.Dial(addr)
			if err != nil {
				return nil, err
			}
			return rawconn.Wrap(c), nil
		}
	}
	s := &fasthttp.Server{NoDefaultDate: true, NoDefaultServerHeader: true, Handler: func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.URI().SetScheme("http") // TLS ends here
		req.SetHost(*upstream)
		if err := up.Do(req, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *raw {
		ln = rawconn.Listener(ln)
	}
	if *cert != "" {
		log.Fatal(s.ServeTLS(ln, *cert, *key))
	}
	log.Fatal(s.Serve(ln))
}
