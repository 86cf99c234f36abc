package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// pkiFiles are PEM files of a throwaway CA, a server and a client
// certificate.
type pkiFiles struct {
	ca, cert, key, clientCert, clientKey string
}

func writePKI(t *testing.T) pkiFiles {
	t.Helper()
	dir := t.TempDir()
	p := pkiFiles{
		ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server-key.pem"),
		clientCert: filepath.Join(dir, "client.pem"), clientKey: filepath.Join(dir, "client-key.pem"),
	}
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bollard test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER := mustCert(t, caTmpl, caTmpl, caKey, caKey)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	writePEMFile(t, p.ca, "CERTIFICATE", caDER)
	for i, leaf := range []struct {
		cert, key string
		usage     x509.ExtKeyUsage
	}{{p.cert, p.key, x509.ExtKeyUsageServerAuth}, {p.clientCert, p.clientKey, x509.ExtKeyUsageClientAuth}} {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{leaf.usage},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		writePEMFile(t, leaf.cert, "CERTIFICATE", mustCert(t, tmpl, ca, key, caKey))
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEMFile(t, leaf.key, "PRIVATE KEY", der)
	}
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, key, signer *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEMFile(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startTLSBroker runs bollard with a TLS listener (and plain TCP) using p.
func startTLSBroker(t *testing.T, p pkiFiles, requireClientCert bool) *broker {
	t.Helper()
	yaml := fmt.Sprintf(`listeners:
  mqtt:
    address: 127.0.0.1:0
  tls:
    address: 127.0.0.1:0
    certFile: %s
    keyFile: %s
    clientCAFile: %s
    requireClientCert: %v
durability:
  mode: none
`, p.cert, p.key, p.ca, requireClientCert)
	path := filepath.Join(t.TempDir(), "bollard.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startBollard(t, "--config", path)
}

// TestInteropMosquittoTLS: mosquitto_pub/sub over TLS, verifying the
// server against the CA; with requireClientCert, a client without a
// certificate is refused and one with a certificate is served.
func TestInteropMosquittoTLS(t *testing.T) {
	sub, pub := requireTool(t, "mosquitto_sub"), requireTool(t, "mosquitto_pub")
	p := writePKI(t)
	for _, require := range []bool{false, true} {
		t.Run(fmt.Sprintf("requireClientCert=%v", require), func(t *testing.T) {
			b := startTLSBroker(t, p, require)
			h, port := hostPort(t, b.tls)
			tlsArgs := []string{"-h", h, "-p", port, "--cafile", p.ca, "-V", "mqttv5"}
			withCert := append(append([]string(nil), tlsArgs...), "--cert", p.clientCert, "--key", p.clientKey)
			topic := "interop/tls"
			runTool(t, 30*time.Second, "", sub, append(withCert, "-i", "tls-sub", "-c", "-x", "600", "-q", "1", "-t", topic, "-E")...)
			runTool(t, 30*time.Second, "", pub, append(withCert, "-i", "tls-pub", "-q", "1", "-t", topic, "-m", "secret")...)
			got := runTool(t, 30*time.Second, "", sub, append(withCert, "-i", "tls-sub", "-c", "-x", "600", "-q", "1", "-t", topic, "-C", "1", "-W", "20")...)
			checkLines(t, got, []string{"secret"})

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, pub, append(tlsArgs, "-i", "tls-nocert", "-q", "1", "-t", topic, "-m", "x")...).CombinedOutput()
			if require && err == nil {
				t.Errorf("a client without a certificate was served: %s", out)
			}
			if !require && err != nil {
				t.Errorf("a client without a certificate was refused although none is required: %v %s", err, out)
			}
		})
	}
}

// TestShutdownDisconnectsV5Clients: on SIGTERM a connected MQTT 5.0 client
// gets DISCONNECT with reason 0x8B (Server shutting down) before the
// broker exits 0.
func TestShutdownDisconnectsV5Clients(t *testing.T) {
	b := startBollard(t, "--durability", "none")
	got := make(chan byte, 1)
	conn, err := net.DialTimeout("tcp", b.mqtt, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: conn, OnClientError: func(error) {},
		OnServerDisconnect: func(d *paho.Disconnect) { got <- d.ReasonCode },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "v5-shutdown", CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case rc := <-got:
		if rc != 0x8B {
			t.Errorf("DISCONNECT reason 0x%02x, want 0x8B", rc)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no DISCONNECT from the server")
	}
	if code := b.wait(30 * time.Second); code != 0 {
		t.Errorf("exit code = %d", code)
	}
	if !strings.Contains(b.logs.String(), `"msg":"drained"`) {
		t.Errorf("no drained log line")
	}
}

// TestPlainClientOnTLSPort: an MQTT client that speaks plain TCP to the
// TLS listener fails the handshake; the broker counts it as a connection
// error (connect_failed) and logs why, so the operator sees it.
func TestPlainClientOnTLSPort(t *testing.T) {
	pub := requireTool(t, "mosquitto_pub")
	b := startTLSBroker(t, writePKI(t), false)
	h, port := hostPort(t, b.tls)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, pub, "-h", h, "-p", port, "-V", "mqttv5", "-q", "1", "-t", "x", "-m", "x").CombinedOutput(); err == nil {
		t.Fatalf("a plain client was served on the TLS port: %s", out)
	}
	line := b.waitLog("connection error", 10*time.Second)
	if line["reason"] != "connect_failed" || !strings.Contains(fmt.Sprint(line["err"]), "tls") {
		t.Fatalf("logged %v", line)
	}
	if got := b.metric(`bollard_connection_errors_total{reason="connect_failed"}`); got != 1 {
		t.Fatalf("connect_failed = %v, want 1", got)
	}
}
