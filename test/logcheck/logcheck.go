// Package logcheck checks the JSON log lines of a broker process, as a log
// shipper would read them.
package logcheck

import (
	"encoding/json"
	"strings"
)

// RepeatedKey finds a JSON record in log (one per line) whose top level
// names a key twice, as when a logger that already has an attribute is
// given it again, and returns that line and the key; "" for none. A log
// shipper keeps only one of the two values.
func RepeatedKey(log string) (line, key string) {
	for line := range strings.SplitSeq(log, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(line))
		if _, err := dec.Token(); err != nil {
			continue
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			key, _ := tok.(string)
			if seen[key] {
				return line, key
			}
			seen[key] = true
			var v json.RawMessage
			if dec.Decode(&v) != nil {
				break
			}
		}
	}
	return "", ""
}
