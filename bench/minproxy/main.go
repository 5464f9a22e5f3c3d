// Command minproxy is the ceiling for "Go + fasthttp doing nothing": a
// reverse proxy that copies the request to one keep-alive upstream and the
// answer back, with no header hygiene, auth or metering.
package main

import (
	"flag"
	"log"
	"time"

	"github.com/valyala/fasthttp"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18001", "address")
	upstream := flag.String("upstream", "127.0.0.1:18000", "upstream host:port")
	cert := flag.String("cert", "", "TLS certificate (PEM); plaintext when empty")
	key := flag.String("key", "", "TLS key (PEM)")
	flag.Parse()
	up := &fasthttp.HostClient{Addr: *upstream, MaxConns: 4096, MaxIdleConnDuration: time.Minute}
	s := &fasthttp.Server{NoDefaultDate: true, NoDefaultServerHeader: true, Handler: func(ctx *fasthttp.RequestCtx) {
		req := &ctx.Request
		req.URI().SetScheme("http") // TLS ends here
		req.SetHost(*upstream)
		if err := up.Do(req, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}}
	if *cert != "" {
		log.Fatal(s.ListenAndServeTLS(*listen, *cert, *key))
	}
	log.Fatal(s.ListenAndServe(*listen))
}
