package session

import (
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// TestAckWakesOnlyWhatWaits: an acknowledgement wakes the connection only
// when an entry waits for the window it opened; with one message in
// flight and nothing queued there is nothing to send, and a wake-up would
// run the writer goroutine for nothing (issue 13).
func TestAckWakesOnlyWhatWaits(t *testing.T) {
	f := newFixture(t, 0, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	wakes := 0
	if err := f.s.Attach(1, func() { wakes++ }); err != nil {
		t.Fatal(err)
	}
	ack := func(o Outgoing) {
		t.Helper()
		var b store.Batch
		var err error
		if o.QoS == 1 {
			err = f.s.Puback(o.PacketID, &b)
		} else {
			if _, err = f.s.Pubrec(o.PacketID, false, &b); err == nil {
				f.commit(&b)
				err = f.s.Pubcomp(o.PacketID, &b)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		f.commit(&b)
	}
	for _, qos := range []byte{1, 2} {
		f.offer("alone", qos, false)
		out := f.next(10)
		if len(out) != 1 {
			t.Fatalf("QoS %d: %d deliveries", qos, len(out))
		}
		before := wakes
		ack(out[0])
		if wakes != before {
			t.Fatalf("QoS %d: an acknowledgement with nothing queued woke the connection %d times", qos, wakes-before)
		}

		f.offer("first", qos, false)
		f.offer("second", qos, false) // held back by the window of 1
		out = f.next(10)
		if !equal(payloads(out), []string{"first"}) {
			t.Fatalf("QoS %d: window of 1 sent %v", qos, payloads(out))
		}
		before = wakes
		ack(out[0])
		if wakes == before {
			t.Fatalf("QoS %d: the acknowledgement that let a queued message out did not wake the connection", qos)
		}
		if out = f.next(10); !equal(payloads(out), []string{"second"}) {
			t.Fatalf("QoS %d: after the acknowledgement %v", qos, payloads(out))
		}
		before = wakes
		ack(out[0])
		if wakes != before {
			t.Fatalf("QoS %d: the last acknowledgement woke the connection", qos)
		}
	}
}
