// Package auth decides who a client is and what it may do: it authenticates
// users against a bcrypt users file and evaluates topic ACLs for publish and
// subscribe.
//
// Every value the package builds (Users, ACL, FileAuthenticator) is immutable
// once constructed, so a caller hot-reloads configuration by building new
// values and swapping them in atomically (for example with atomic.Pointer);
// the package holds no global state and does no I/O beyond reading a users
// file on request.
//
// The principal of an anonymous client is the empty string.
package auth
