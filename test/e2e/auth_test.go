//go:build e2e

package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
)

// TestUsersFromSecret runs a broker whose users come from a Secret (a
// Secret volume, rewritten by the node agent to a local directory): the
// user connects with its password, a wrong password and anonymous clients
// are refused.
func TestUsersFromSecret(t *testing.T) {
	ns := namespace(t, "auth")
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testCluster.Kube.CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "users"},
		Data:       map[string][]byte{"users": []byte("alice:" + string(hash) + "\n")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := newBroker(ns, "secured")
	b.Spec.Auth = v1alpha1.Auth{UsersSecretRef: &v1alpha1.SecretKeyRef{Name: "users"}}
	createBroker(t, b, 60*time.Second)
	addr := mqttAddr(t, brokerPod(t, ns, "secured"))

	tests := map[string]struct {
		user, password string
		ok             bool
	}{
		"right password": {"alice", "s3cret", true},
		"wrong password": {"alice", "nope", false},
		"anonymous":      {"", "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ack, err := connectAs(t.Context(), addr, tc.user, tc.password)
			if ok := err == nil && ack.ReasonCode == 0; ok != tc.ok {
				t.Errorf("connected = %v (CONNACK %+v, err %v), want %v", ok, ack, err, tc.ok)
			}
		})
	}
}

func connectAs(ctx context.Context, addr, user, password string) (*paho.Connack, error) {
	conn, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnClientError: func(error) {}})
	cp := &paho.Connect{ClientID: "auth-" + user, CleanStart: true, KeepAlive: 30}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := c.Connect(cctx, cp)
	if err == nil {
		_ = c.Disconnect(&paho.Disconnect{}) // best effort
	} else {
		conn.Close()
	}
	return ack, err
}
