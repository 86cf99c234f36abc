// Package access is the one definition of who may do what in Bollard: the
// syntax, validation and meaning of the users file and of topic ACL rules.
//
// The broker (broker/auth, broker/engine) evaluates rules with it; the
// configuration schema (broker/config) validates with it; the operator
// (controllers/) checks users Secrets and renders ACLs with it. So the
// operator cannot accept a rule the broker refuses, nor read one
// differently. It imports no other package of Bollard.
//
// # Who a rule is for
//
//   - a username: that authenticated user;
//   - "*" (AllUsers): every authenticated user. Anonymous clients are not
//     included;
//   - "" (Anonymous): anonymous clients (those that connect without a
//     username, when anonymous access is allowed).
//
// Names starting with '$' are reserved and refused, in rules as in the
// users file. With no rules at all, every client that may connect may
// publish and subscribe to everything; with rules, a client may do only
// what a rule for it allows, and deny rules win over allow rules.
//
// # Placeholders
//
// In a rule's topic, %u stands for the client's username and %c for its
// client identifier. The client identifier is chosen by the client: %c is
// not an identity, so a rule with %c only separates well-behaved clients
// from each other (use %u, which is authenticated, to separate users).
package access
