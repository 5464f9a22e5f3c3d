// Package tlsconf builds the gateway's server TLS configuration: TLS 1.2 minimum and
// 1.3 preferred, AEAD ECDHE suites only for 1.2, session tickets with rotated keys,
// optional client certificates (mTLS), and a certificate that is swapped atomically on
// Reload (SIGHUP, forwarded by the caller) or when its files change, without dropping
// connections: existing connections keep the certificate they were handshaken with.
package tlsconf

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure Server; zero durations pick the defaults named next to them.
type Options struct {
	CertFile string
	KeyFile  string
	// ClientCAFile, when set, asks clients for a certificate and verifies one that is
	// given against these CAs (tls.VerifyClientCertIfGiven: API-key clients without a
	// certificate still connect). Read once at New.
	ClientCAFile string
	// PollInterval between checks of the certificate files' mtime and size; default 5s.
	PollInterval time.Duration
	// TicketKeyRotation is how often a new session ticket key is made; default 1h.
	// The last ticketKeys keys still decrypt, so a ticket lives up to 3 rotations.
	TicketKeyRotation time.Duration
}

const ticketKeys = 3

// Server holds the live TLS configuration.
type Server struct {
	opts Options
	cfg  *tls.Config
	cert atomic.Pointer[tls.Certificate]

	mu      sync.Mutex // serialises reloads and guards stamp and keys
	stamp   fileStamp
	keys    [][32]byte
	reloads atomic.Uint64
	fails   atomic.Uint64
	lastErr atomic.Pointer[error]

	stop chan struct{}
	wg   sync.WaitGroup
}

// New loads the certificate and starts the file watcher and the ticket key rotation;
// Close stops them.
func New(opts Options) (*Server, error) {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.TicketKeyRotation <= 0 {
		opts.TicketKeyRotation = time.Hour
	}
	s := &Server{opts: opts, stop: make(chan struct{})}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.cfg = &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"http/1.1"},
		GetCertificate: s.getCertificate,
	}
	if opts.ClientCAFile != "" {
		pem, err := os.ReadFile(opts.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cannot use client CA file %s: no PEM certificate", opts.ClientCAFile)
		}
		s.cfg.ClientCAs = pool
		s.cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if err := s.rotateTicketKey(); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Config is the server configuration; pass it to tls.NewListener as is (a Clone would
// not follow the ticket key rotation).
func (s *Server) Config() *tls.Config { return s.cfg }

// Certificate is the certificate new handshakes get.
func (s *Server) Certificate() *tls.Certificate { return s.cert.Load() }

func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

// Reload reads the certificate files again. On error the current certificate stays
// and the error is counted and kept (Stats).
func (s *Server) Reload() error {
	if err := s.load(); err != nil {
		s.fails.Add(1)
		s.lastErr.Store(&err)
		return err
	}
	s.reloads.Add(1)
	return nil
}

// Stats reports successful reloads, failed ones and the last failure.
func (s *Server) Stats() (reloads, failures uint64, lastErr error) {
	if p := s.lastErr.Load(); p != nil {
		lastErr = *p
	}
	return s.reloads.Load(), s.fails.Load(), lastErr
}

func (s *Server) load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	stamp, err := stampOf(s.opts.CertFile, s.opts.KeyFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(s.opts.CertFile, s.opts.KeyFile)
	if err != nil {
		s.stamp = stamp // do not retry the same bad files on every poll
		return fmt.Errorf("cannot load certificate %s: %w", s.opts.CertFile, err)
	}
	if cert.Leaf == nil {
		return errors.New("cannot load certificate: no leaf")
	}
	s.cert.Store(&cert)
	s.stamp = stamp
	return nil
}

// Close stops the watcher and the rotation; connections are not affected.
func (s *Server) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	return nil
}

func (s *Server) run() {
	defer s.wg.Done()
	poll := time.NewTicker(s.opts.PollInterval)
	defer poll.Stop()
	rotate := time.NewTicker(s.opts.TicketKeyRotation)
	defer rotate.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-poll.C:
			if s.changed() {
				_ = s.Reload() // counted and kept in Stats
			}
		case <-rotate.C:
			if err := s.rotateTicketKey(); err != nil {
				s.fails.Add(1)
				s.lastErr.Store(&err)
			}
		}
	}
}

// rotateTicketKey puts a fresh key first (it encrypts new tickets) and keeps the
// previous ones for decryption only.
func (s *Server) rotateTicketKey() error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("cannot make a session ticket key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := append([][32]byte{k}, s.keys...)
	if len(keys) > ticketKeys {
		keys = keys[:ticketKeys]
	}
	s.keys = keys
	s.cfg.SetSessionTicketKeys(keys)
	return nil
}

type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func stampOf(certFile, keyFile string) (fileStamp, error) {
	c, err := os.Stat(certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("cannot stat certificate: %w", err)
	}
	k, err := os.Stat(keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("cannot stat key: %w", err)
	}
	return fileStamp{c.ModTime(), k.ModTime(), c.Size(), k.Size()}, nil
}

func (s *Server) changed() bool {
	st, err := stampOf(s.opts.CertFile, s.opts.KeyFile)
	if err != nil {
		return false // a file being replaced; the next poll sees the new one
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return st != s.stamp
}
