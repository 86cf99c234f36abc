package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/bollard-io/bollard/broker/access"
)

// Errors returned by Authenticator implementations (possibly wrapped).
var (
	// ErrBadCredentials: the username is unknown or the password is wrong
	// or missing (MQTT 5.0 reason 0x86, 3.1.1 return code 0x04).
	ErrBadCredentials = errors.New("auth: bad username or password")
	// ErrNotAuthorized: the client is not allowed to connect, for example
	// anonymously (MQTT 5.0 reason 0x87, 3.1.1 return code 0x05).
	ErrNotAuthorized = errors.New("auth: not authorized")
)

// Authenticator decides whether a connecting client may connect and under
// which principal. Implementations must be safe for concurrent use.
type Authenticator interface {
	// Authenticate checks the credentials of a CONNECT. username is "" when
	// the client sent none; hasPassword tells an empty password from none.
	// It returns the principal (the username, or "" for an anonymous
	// client) or an error wrapping ErrBadCredentials or ErrNotAuthorized.
	Authenticate(ctx context.Context, clientID, username string, password []byte, hasPassword bool) (principal string, err error)
}

// Authorizer decides what a principal may do; *access.ACL implements it.
type Authorizer interface {
	CanPublish(principal, clientID, topicName string) bool
	CanSubscribe(principal, clientID, filter string) bool
}

// Reader is implemented by Authorizers that also decide, per message,
// whether a subscriber may receive it (*access.ACL does). The broker checks
// it for every message it queues or delivers, so a granted wildcard
// subscription never carries a topic its subscriber may not read.
type Reader interface {
	CanRead(principal, clientID, topicName string) bool
}

var (
	_ Authenticator = (*FileAuthenticator)(nil)
	_ Authorizer    = (*access.ACL)(nil)
	_ Reader        = (*access.ACL)(nil)
)

// FileAuthenticator authenticates against Users (typically from a users
// file). It is immutable; to reload, build a new one and swap it.
type FileAuthenticator struct {
	users          *Users
	allowAnonymous bool
}

// NewFileAuthenticator returns an Authenticator for users (nil for none).
// allowAnonymous lets clients without a username connect as principal "".
// Clients that do send a username must always authenticate: wrong
// credentials never fall back to anonymous access.
func NewFileAuthenticator(users *Users, allowAnonymous bool) *FileAuthenticator {
	return &FileAuthenticator{users: users, allowAnonymous: allowAnonymous}
}

// Authenticate implements Authenticator.
func (a *FileAuthenticator) Authenticate(ctx context.Context, clientID, username string, password []byte, hasPassword bool) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	if username == "" {
		if a.allowAnonymous {
			return "", nil
		}
		return "", fmt.Errorf("%w: anonymous access is disabled (client %q)", ErrNotAuthorized, clientID)
	}
	if !hasPassword {
		return "", fmt.Errorf("%w: no password for user %q", ErrBadCredentials, username)
	}
	if !a.users.Authenticate(username, password) {
		return "", fmt.Errorf("%w: user %q", ErrBadCredentials, username)
	}
	return username, nil
}

// AllowAnonymous reports whether anonymous clients are accepted.
func (a *FileAuthenticator) AllowAnonymous() bool { return a.allowAnonymous }
