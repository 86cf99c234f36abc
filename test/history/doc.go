// Package history records what a test run's MQTT clients did and saw, and
// checks it against the broker's promises: every acknowledged message
// reaches every matching persistent subscriber, in per-publisher order,
// QoS 2 exactly once, and nothing arrives that nobody sent.
//
// A Recorder (safe for concurrent use) takes four kinds of event:
//
//   - Sent: a publish attempt (publisher ID, sequence number, QoS, topic,
//     send time, the server address it goes to when known), recorded
//     before the PUBLISH goes out; Settle then gives
//     its outcome: Acked (PUBACK or PUBCOMP with success), Failed (a
//     reason code of 0x80 or more: the broker refused it) or Unknown (no
//     answer: the connection was lost, the publish timed out, or QoS 0).
//     An attempt never settled stays Pending, which counts as Unknown.
//   - Received: a delivery a subscriber saw (client ID, topic, payload,
//     QoS, DUP flag, time). The payload names the message (Encode,
//     Decode: "pub-<id>/<seq>"); one that does not decode is kept as a
//     Malformed anomaly, never a panic.
//   - Subscribe: the scenario declares that a subscriber's persistent
//     session (granted QoS) matches the topics of a set of publishers from
//     a time on (the SUBACK). A message sent before that time is not
//     expected, and may arrive.
//   - Anomaly: something a client saw that is wrong in itself, such as a
//     persistent session missing on reconnect (SessionLost).
//
// Check (pure, over a History snapshot) returns a Report: counts, and the
// violations, each naming the publisher, sequence number and subscriber:
//
//   - Lost: an acknowledged message, sent while a subscriber's
//     subscription existed, at an effective QoS (the lower of the publish
//     and the subscription QoS) of 1 or 2, never reached that subscriber.
//   - Reordered: a subscriber's first delivery of a message arrived after
//     its first delivery of a later message of the same publisher on the
//     same topic (MQTT orders per topic; a publisher that uses one topic
//     is checked in full). Redeliveries do not count.
//   - Duplicated: a message delivered more than once to a subscriber at
//     QoS 0 or 2. At QoS 1 a redelivery is allowed and only counted
//     (Report.Redelivered).
//   - Phantom: a delivery of a message that was never sent.
//   - Mismatched: a delivery on another topic than the one sent, or at a
//     QoS other than the effective QoS.
//   - Unsubscribed: a delivery to a subscriber not declared to match that
//     publisher.
//   - Malformed, SessionLost and other anomalies, as recorded.
//   - Truncated: the Recorder's limit (WithLimit) dropped events, so the
//     check is incomplete; a report is never cleaner than its history.
//
// Failed, Unknown and Pending messages may or may not be delivered: their
// deliveries are counted (Report.UnackedDelivered), not violations.
//
// The package is pure: it imports no MQTT client. Its sibling
// test/history/mqttclient drives paho.golang clients that feed a
// Recorder.
package history
