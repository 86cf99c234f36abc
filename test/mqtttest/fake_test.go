package mqtttest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Dial returns a refused CONNACK as a *RefusedError that carries it, with
// its Server Reference.
func TestDialReturnsRefusal(t *testing.T) {
	r, err := StartRedirector(0x9C, "127.0.0.1:1883", false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, ack, err := Dial(ctx, r.Addr(), "x", true, 0, nil)
	var ref *RefusedError
	if c != nil || !errors.As(err, &ref) || ack == nil || ack.ReasonCode != 0x9C {
		t.Fatalf("Dial = %v, %+v, %v", c, ack, err)
	}
	if got := ref.ServerReference(); got != "127.0.0.1:1883" {
		t.Fatalf("server reference %q", got)
	}
	if r.Connects() != 1 {
		t.Fatalf("redirector answered %d CONNECTs", r.Connects())
	}
}
