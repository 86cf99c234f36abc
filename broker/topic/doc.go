// Package topic decides which subscriptions and which retained messages a
// topic name reaches: it validates topic names and filters, parses shared
// subscriptions ($share/{group}/{filter}), and holds the subscription trie and
// the retained-message index.
//
// The package does no I/O and imports no other Bollard package. Matching
// follows MQTT 3.1.1 section 4.7 and MQTT 5.0 sections 4.7 and 4.8:
//
//   - '+' matches exactly one level, which may be empty;
//   - '#' matches the parent level and any number of child levels, so
//     "sport/#" matches "sport";
//   - a filter whose first level is '+' or '#' never matches a topic name that
//     starts with '$' [MQTT-4.7.2-1];
//   - no normalisation is applied: names and filters are compared byte by
//     byte [MQTT-4.7.3-4].
package topic
