package host

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/bollard-io/bollard/test/logcheck"
)

// net/http's own errors (a failed TLS handshake per connection of a
// scanner) are warnings, at most one per httpErrorLogEvery.
func TestHTTPErrorLogLimited(t *testing.T) {
	var logs logcheck.Buffer
	l := slogErrorLog(slog.New(slog.NewJSONHandler(&logs, nil)), "admin")
	for i := range 50 {
		l.Printf("http: TLS handshake error from 127.0.0.1:%d: EOF", 40000+i)
	}
	recs, err := logs.Records("")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0]["level"] != "WARN" || recs[0]["component"] != "admin" ||
		recs[0]["msg"] != "http: TLS handshake error from 127.0.0.1:40000: EOF" || recs[0]["unlogged_before"] != float64(0) {
		t.Fatalf("records %v", fmt.Sprint(recs))
	}
}
