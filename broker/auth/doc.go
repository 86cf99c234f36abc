// Package auth decides who a client is: it authenticates users against a
// bcrypt users file. What a client may do is decided by the topic ACL of
// broker/access, which also defines the users file syntax; this package
// holds the interfaces (Authenticator, Authorizer, Reader) the server
// calls.
//
// Every value the package builds (Users, FileAuthenticator) is immutable
// once constructed, so a caller hot-reloads configuration by building new
// values and swapping them in atomically (for example with atomic.Pointer);
// the package holds no global state and does no I/O beyond reading a users
// file on request.
//
// The principal of an anonymous client is the empty string.
package auth
