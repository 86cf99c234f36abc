package packet

import (
	"errors"
	"fmt"
)

// ReasonCode is an MQTT 5.0 Reason Code. The 3.1.1 CONNACK return codes
// (0x00..0x05) and SUBACK return codes (0x00..0x02, 0x80) share this type,
// so a single field serves every protocol version.
type ReasonCode byte

// MQTT 5.0 Reason Codes (section 2.4). Several values have more than one name
// because the meaning depends on the packet that carries them.
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWillMessage           ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// MQTT 3.1 and 3.1.1 CONNACK return codes and the SUBACK failure code. They
// share ReasonCode with 5.0; use LegacyConnackCode to translate a 5.0 code.
const (
	ConnectionAccepted                 ReasonCode = 0x00
	RefusedUnacceptableProtocolVersion ReasonCode = 0x01
	RefusedIdentifierRejected          ReasonCode = 0x02
	RefusedServerUnavailable           ReasonCode = 0x03
	RefusedBadUsernameOrPassword       ReasonCode = 0x04
	RefusedNotAuthorized               ReasonCode = 0x05
	SubackFailure                      ReasonCode = 0x80
)

var reasonNames = map[ReasonCode]string{
	0x00: "success", 0x01: "granted QoS 1", 0x02: "granted QoS 2",
	0x03: "server unavailable (3.1.1)", 0x04: "disconnect with will message",
	0x05: "not authorized (3.1.1)",
	0x10: "no matching subscribers", 0x11: "no subscription existed",
	0x18: "continue authentication", 0x19: "re-authenticate",
	0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
	0x83: "implementation specific error", 0x84: "unsupported protocol version",
	0x85: "client identifier not valid", 0x86: "bad user name or password",
	0x87: "not authorized", 0x88: "server unavailable", 0x89: "server busy",
	0x8A: "banned", 0x8B: "server shutting down", 0x8C: "bad authentication method",
	0x8D: "keep alive timeout", 0x8E: "session taken over", 0x8F: "topic filter invalid",
	0x90: "topic name invalid", 0x91: "packet identifier in use",
	0x92: "packet identifier not found", 0x93: "receive maximum exceeded",
	0x94: "topic alias invalid", 0x95: "packet too large", 0x96: "message rate too high",
	0x97: "quota exceeded", 0x98: "administrative action", 0x99: "payload format invalid",
	0x9A: "retain not supported", 0x9B: "QoS not supported", 0x9C: "use another server",
	0x9D: "server moved", 0x9E: "shared subscriptions not supported",
	0x9F: "connection rate exceeded", 0xA0: "maximum connect time",
	0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}

// String returns the 5.0 name of the code (or its 3.1.1 meaning for 0x03 and
// 0x05, which 5.0 does not define).
func (c ReasonCode) String() string {
	if s, ok := reasonNames[c]; ok {
		return s
	}
	return fmt.Sprintf("reason code 0x%02X", byte(c))
}

// IsError reports whether the code signals a failure (0x80 and above).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// LegacyConnackCode translates a 5.0 CONNACK Reason Code into the nearest
// MQTT 3.1/3.1.1 CONNACK return code (0x00..0x05). Codes that are already
// valid 3.1.1 return codes are returned unchanged.
func LegacyConnackCode(c ReasonCode) ReasonCode {
	switch c {
	case Success, RefusedUnacceptableProtocolVersion, RefusedIdentifierRejected,
		RefusedServerUnavailable, RefusedBadUsernameOrPassword, RefusedNotAuthorized:
		return c
	case UnsupportedProtocolVersion:
		return RefusedUnacceptableProtocolVersion
	case ClientIdentifierNotValid:
		return RefusedIdentifierRejected
	case BadUserNameOrPassword, BadAuthenticationMethod:
		return RefusedBadUsernameOrPassword
	case NotAuthorized, Banned:
		return RefusedNotAuthorized
	default:
		return RefusedServerUnavailable
	}
}

// Reason Codes each packet type may carry in 5.0 (sections 3.2.2.2, 3.4.2.1,
// 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1).
var validCodes = map[Type][]ReasonCode{
	CONNACK: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
		0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F},
	PUBACK:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	PUBREC:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	PUBREL:   {0x00, 0x92},
	PUBCOMP:  {0x00, 0x92},
	SUBACK:   {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2},
	UNSUBACK: {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91},
	DISCONNECT: {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E,
		0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C,
		0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2},
	AUTH: {0x00, 0x18, 0x19},
}

// ValidFor reports whether c is a Reason Code that packet type t may carry
// in the given protocol version.
func (c ReasonCode) ValidFor(t Type, version byte) bool {
	if version < V5 {
		switch t {
		case CONNACK:
			return c <= RefusedNotAuthorized
		case SUBACK:
			return c <= GrantedQoS2 || c == SubackFailure
		}
		return c == Success
	}
	for _, v := range validCodes[t] {
		if v == c {
			return true
		}
	}
	return false
}

func checkCode(c ReasonCode, t Type, version byte) error {
	if !c.ValidFor(t, version) {
		return errorf(ProtocolError, "%s: reason code 0x%02X not allowed", t, byte(c))
	}
	return nil
}

// Error is a decoding or encoding failure that carries the Reason Code the
// specification assigns to it, so a server can answer with the right CONNACK
// or DISCONNECT. Any two *Error values with the same Code match under
// errors.Is, so errors.Is(err, ErrMalformed) is true for every malformed
// packet error.
type Error struct {
	// Code is the 5.0 Reason Code for the failure (MalformedPacket,
	// ProtocolError, PacketTooLarge, UnsupportedProtocolVersion, ...).
	Code ReasonCode
	err  error
}

// Sentinel errors for errors.Is, one per Reason Code this package returns.
var (
	ErrMalformed          = &Error{Code: MalformedPacket}
	ErrProtocol           = &Error{Code: ProtocolError}
	ErrTooLarge           = &Error{Code: PacketTooLarge}
	ErrUnsupportedVersion = &Error{Code: UnsupportedProtocolVersion}
	ErrClientIDNotValid   = &Error{Code: ClientIdentifierNotValid}
	ErrTopicNameInvalid   = &Error{Code: TopicNameInvalid}
)

func errorf(code ReasonCode, format string, args ...any) *Error {
	return &Error{Code: code, err: fmt.Errorf(format, args...)}
}

// Error returns the message, prefixed "packet: " and ending with the reason.
func (e *Error) Error() string {
	if e.err == nil {
		return "packet: " + e.Code.String()
	}
	return "packet: " + e.err.Error() + " (" + e.Code.String() + ")"
}

// Unwrap returns the underlying cause, if any (for example
// io.ErrUnexpectedEOF).
func (e *Error) Unwrap() error { return errors.Unwrap(e.err) }

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// ReasonCodeOf returns the Reason Code carried by err: Success for nil, the
// Code of the first *Error in its chain, and UnspecifiedError otherwise.
func ReasonCodeOf(err error) ReasonCode {
	if err == nil {
		return Success
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return UnspecifiedError
}

// annotate prefixes err's message with ctx, keeping its Reason Code and
// the "packet: " prefix in front.
func annotate(err error, ctx string) error {
	var e *Error
	if !errors.As(err, &e) {
		return fmt.Errorf("packet: %s: %w", ctx, err)
	}
	if e.err == nil {
		return errorf(e.Code, "%s", ctx)
	}
	return &Error{Code: e.Code, err: fmt.Errorf("%s: %w", ctx, e.err)}
}

func malformed(format string, args ...any) *Error {
	return errorf(MalformedPacket, format, args...)
}

func protocolErr(format string, args ...any) *Error {
	return errorf(ProtocolError, format, args...)
}
