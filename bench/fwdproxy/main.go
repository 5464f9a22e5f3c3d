// Command fwdproxy is the gateway's forwarder alone (gateway/proxy.Forward:
// header hygiene, credential injection, streaming-aware copy) without auth,
// policy, budget or metering — "plain forwarding" in the peer comparison.
package main

import (
	"flag"
	"log"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/gateway/proxy"
	"github.com/caracal-gw/caracal/internal/rawconn"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18002", "address")
	upstream := flag.String("upstream", "http://127.0.0.1:18000", "upstream URL")
	cert := flag.String("cert", "", "TLS certificate (PEM); plaintext when empty")
	key := flag.String("key", "", "TLS key (PEM)")
	raw := flag.Bool("raw", true, "raw socket reads and writes (internal/rawconn), as the gateway's default gateway.rawSocketIO")
	flag.Parse()
	up, err := proxy.NewUpstream([]string{*upstream}, proxy.Options{
		CredentialHeader: []byte("Authorization"), CredentialValue: []byte("Bearer sk-bench"), RawSocketIO: *raw})
	if err != nil {
		log.Fatal(err)
	}
	s := &fasthttp.Server{NoDefaultDate: true, NoDefaultServerHeader: true,
		Handler: func(ctx *fasthttp.RequestCtx) { proxy.Forward(ctx, up, nil, nil) }}
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
