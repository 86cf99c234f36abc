package host

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/config"
)

// certRecheckInterval bounds how often the certificate files are checked
// for changes: a rotated certificate (for example a Kubernetes Secret
// updated by cert-manager) is picked up by new connections without a
// restart.
const certRecheckInterval = 5 * time.Second

// bindTLS binds a TLS listener (TLS 1.2 or later) with the certificate,
// key and optional client CAs of cfg.
func (s *ListenerSet) bindTLS(addr string, cfg config.TLSListener) (*boundListener, error) {
	tc, err := serverTLSConfig(cfg, s.log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return s.streamListener(ListenerTLS, tls.NewListener(ln, tc)), nil
}

// serverTLSConfig builds the listener's tls.Config. The key pair is loaded
// now, so that a bad file stops the start with a clear error, and reloaded
// when the files change.
func serverTLSConfig(cfg config.TLSListener, log *slog.Logger) (*tls.Config, error) {
	certs := &certReloader{certFile: cfg.CertFile, keyFile: cfg.KeyFile, log: log}
	if err := certs.load(); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.getCertificate,
	}
	if cfg.ClientCAFile != "" {
		cas := &caReloader{file: cfg.ClientCAFile, log: log}
		if err := cas.load(); err != nil {
			return nil, err
		}
		tc.ClientCAs = cas.pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if cfg.RequireClientCert {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		// Each handshake verifies client certificates against the current
		// CA bundle, so a rotated CA (a renewed Secret) needs no restart.
		base := tc.Clone()
		tc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := base.Clone()
			c.ClientCAs = cas.current()
			return c, nil
		}
	}
	return tc, nil
}

// caReloader serves the client CA pool from a file, reloading it when the
// file's content changes (checked at most every certRecheckInterval). A
// reload that fails keeps the previous pool.
type caReloader struct {
	file string
	log  *slog.Logger

	mu        sync.Mutex
	pool      *x509.CertPool
	stamp     string
	checkedAt time.Time
}

func (r *caReloader) load() error {
	stamp := fileStamp(r.file)
	pool, err := loadCertPool(r.file)
	if err != nil {
		return err
	}
	r.pool, r.stamp, r.checkedAt = pool, stamp, time.Now()
	return nil
}

func (r *caReloader) current() *x509.CertPool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checkedAt) >= certRecheckInterval {
		r.checkedAt = time.Now()
		if fileStamp(r.file) != r.stamp {
			if err := r.load(); err != nil {
				r.log.Error("TLS client CA reload failed; keeping the previous CAs", "err", err)
			} else {
				r.log.Info("TLS client CAs reloaded", "clientCAFile", r.file)
			}
		}
	}
	return r.pool
}

// loadCertPool reads PEM certificates from path.
func loadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("listeners.tls.clientCAFile: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("listeners.tls.clientCAFile: no PEM certificate found in %s", path)
	}
	return pool, nil
}

// certReloader serves a key pair from files, reloading it when either
// file's content changes. A reload that fails keeps the
// previous pair.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string
	checkedAt time.Time
}

func (r *certReloader) load() error {
	stamp := fileStamp(r.certFile) + "|" + fileStamp(r.keyFile)
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("listeners.tls.certFile/keyFile: %w", err)
	}
	r.cert, r.stamp, r.checkedAt = &c, stamp, time.Now()
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checkedAt) >= certRecheckInterval {
		r.checkedAt = time.Now()
		if fileStamp(r.certFile)+"|"+fileStamp(r.keyFile) != r.stamp {
			if err := r.load(); err != nil { // keep serving the previous pair
				r.log.Error("TLS certificate reload failed; keeping the previous one", "err", err)
			} else {
				r.log.Info("TLS certificate reloaded", "certFile", r.certFile)
			}
		}
	}
	return r.cert, nil
}

// fileStamp identifies a file version by a digest of its content,
// following symlinks (Kubernetes Secret volumes swap a symlink). Content,
// not modification time: a rewrite within the same clock tick still counts.
func fileStamp(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "missing"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
