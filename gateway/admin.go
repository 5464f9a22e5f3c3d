package gateway

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/VictoriaMetrics/metrics"
)

// Check is one readiness condition.
type Check struct {
	Name string
	OK   func() bool
}

// AdminHandler serves /metrics, /healthz, /readyz and, when enabled, pprof.
// /healthz says the process is alive; /readyz says it can serve traffic: every
// check passes (policy store, budget store, producer). When token is set,
// everything but /healthz and /readyz needs "Authorization: Bearer <token>".
func AdminHandler(checks []Check, token string, enablePprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n")) //nolint:errcheck
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		status, body := http.StatusOK, "ready\n"
		for _, c := range checks {
			if !c.OK() {
				status, body = http.StatusServiceUnavailable, "not ready: "+c.Name+"\n"
				break
			}
		}
		w.WriteHeader(status)
		w.Write([]byte(body)) //nolint:errcheck
	})
	protected := http.NewServeMux()
	protected.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		metrics.WritePrometheus(w, true)
	})
	if enablePprof {
		protected.HandleFunc("/debug/pprof/", pprof.Index)
		protected.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		protected.HandleFunc("/debug/pprof/profile", pprof.Profile)
		protected.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		protected.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+token)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		protected.ServeHTTP(w, r)
	}))
	return mux
}

// ServeAdmin serves the admin handler on ln until it is closed.
func ServeAdmin(ln net.Listener, h http.Handler) *http.Server {
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5e9}
	go s.Serve(ln) //nolint:errcheck // ends when the listener is closed at shutdown
	return s
}
