package host

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// kubeletSecretDir lays files out as the kubelet does in a Secret volume:
// the data in a timestamped directory, a ..data symlink to it, and each
// file a symlink through ..data. swap replaces the content the way a
// Secret update does: a new directory, then an atomic rename of ..data.
type kubeletSecretDir struct {
	t   *testing.T
	dir string
	gen int
}

func newKubeletSecretDir(t *testing.T, files map[string][]byte) *kubeletSecretDir {
	t.Helper()
	k := &kubeletSecretDir{t: t, dir: t.TempDir()}
	k.swap(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(k.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

func (k *kubeletSecretDir) path(name string) string { return filepath.Join(k.dir, name) }

func (k *kubeletSecretDir) swap(files map[string][]byte) {
	k.t.Helper()
	k.gen++
	ts := fmt.Sprintf("..2026_01_01_00_00_%02d.%d", k.gen, k.gen)
	if err := os.Mkdir(filepath.Join(k.dir, ts), 0o755); err != nil {
		k.t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(k.dir, ts, name), b, 0o600); err != nil {
			k.t.Fatal(err)
		}
	}
	tmp := filepath.Join(k.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		k.t.Fatal(err)
	}
}

func (p *testPKI) files(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for name, path := range map[string]string{"tls.crt": p.certFile, "tls.key": p.keyFile, "ca.crt": p.caFile} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// handshake dials the TLS listener as a client of root presenting cert and
// reports whether a byte round-trips (TLS 1.3 reports a refused client
// certificate on the first read).
func handshake(addr string, root *x509.CertPool, cert tls.Certificate) error {
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: root, Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	_, err = io.ReadFull(c, make([]byte, 1))
	return err
}

// TestTLSSecretRenewalWithoutRestart: a TLS Secret renewed in place (server
// certificate, key and client CA bundle, swapped through ..data as the
// kubelet does) is used by new handshakes of the running listener, which
// is why the operator no longer rolls the pod on a renewal. Connections
// made before the renewal keep working.
func TestTLSSecretRenewalWithoutRestart(t *testing.T) {
	old, next := newTestPKI(t), newTestPKI(t)
	sec := newKubeletSecretDir(t, old.files(t))
	cfg := listenersOnly("", "127.0.0.1:0", "")
	l := &cfg.Listeners.TLS
	l.CertFile, l.KeyFile, l.ClientCAFile, l.RequireClientCert = sec.path("tls.crt"), sec.path("tls.key"), sec.path("ca.crt"), true
	ls := startListeners(t, cfg, &echoHandler{})
	addr := ls.Addr(ListenerTLS).String()

	if err := handshake(addr, old.pool, old.client); err != nil {
		t.Fatalf("before the renewal: %v", err)
	}
	if err := handshake(addr, old.pool, next.client); err == nil {
		t.Fatal("a client certificate of the next CA was accepted before the renewal")
	}
	before, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: old.pool, Certificates: []tls.Certificate{old.client}})
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	sec.swap(next.files(t))
	deadline := time.Now().Add(3 * certRecheckInterval)
	for {
		err := handshake(addr, next.pool, next.client)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewed certificate and CA not used after %s: %v", 3*certRecheckInterval, err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, bounded by the deadline
	}
	if err := handshake(addr, next.pool, old.client); err == nil {
		t.Error("a client certificate of the replaced CA is still accepted")
	}
	roundTrip(t, before, "connection made before the renewal")
}
