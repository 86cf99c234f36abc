package packet

import (
	"cmp"
	"fmt"
)

// Properties holds the MQTT 5.0 properties of a packet (section 2.2.2).
// Pointer fields are nil when the property is absent, so absent differs
// from zero; binary fields are nil when absent (a decoded, present but empty
// value is a non-nil empty slice). Encoding for 3.1 or 3.1.1 ignores
// Properties altogether.
//
// Which properties a packet may carry is checked on decode and encode: an
// identifier not allowed in the packet is a Malformed Packet (section
// 2.2.2.2), and a duplicate or an out-of-range value is a Protocol Error.
type Properties struct {
	PayloadFormatIndicator *byte   // 0x01 PUBLISH, will: 0 bytes, 1 UTF-8
	MessageExpiryInterval  *uint32 // 0x02 PUBLISH, will: seconds
	ContentType            *string // 0x03 PUBLISH, will
	ResponseTopic          *string // 0x08 PUBLISH, will
	CorrelationData        []byte  // 0x09 PUBLISH, will
	// SubscriptionIdentifiers (0x0B) may repeat in PUBLISH (server to
	// client); SUBSCRIBE carries at most one. Each is 1..MaxVarint.
	SubscriptionIdentifiers    []uint32
	SessionExpiryInterval      *uint32 // 0x11 CONNECT, CONNACK, DISCONNECT
	AssignedClientIdentifier   *string // 0x12 CONNACK
	ServerKeepAlive            *uint16 // 0x13 CONNACK
	AuthenticationMethod       *string // 0x15 CONNECT, CONNACK, AUTH
	AuthenticationData         []byte  // 0x16 CONNECT, CONNACK, AUTH
	RequestProblemInformation  *byte   // 0x17 CONNECT: 0 or 1
	WillDelayInterval          *uint32 // 0x18 will
	RequestResponseInformation *byte   // 0x19 CONNECT: 0 or 1
	ResponseInformation        *string // 0x1A CONNACK
	ServerReference            *string // 0x1C CONNACK, DISCONNECT
	ReasonString               *string // 0x1F acks, DISCONNECT, AUTH
	ReceiveMaximum             *uint16 // 0x21 CONNECT, CONNACK: non-zero
	TopicAliasMaximum          *uint16 // 0x22 CONNECT, CONNACK
	TopicAlias                 *uint16 // 0x23 PUBLISH: non-zero
	MaximumQoS                 *byte   // 0x24 CONNACK: 0 or 1
	RetainAvailable            *byte   // 0x25 CONNACK: 0 or 1
	// User (0x26) holds the user properties in wire order; keys may repeat.
	User                            []UserProperty
	MaximumPacketSize               *uint32 // 0x27 CONNECT, CONNACK: non-zero
	WildcardSubscriptionAvailable   *byte   // 0x28 CONNACK: 0 or 1
	SubscriptionIdentifierAvailable *byte   // 0x29 CONNACK: 0 or 1
	SharedSubscriptionAvailable     *byte   // 0x2A CONNACK: 0 or 1
}

// UserProperty is one User Property, a UTF-8 string pair.
type UserProperty struct {
	Key   string
	Value string
}

// willProperties is the pseudo packet type under which the Will Properties
// of a CONNECT are checked.
const willProperties Type = 0

// propField reads, sizes and writes one property of a Properties value.
type propField interface {
	// size is the encoded size including identifier(s), 0 when absent.
	size(p *Properties) int
	appendTo(dst []byte, id byte, p *Properties) []byte
	decode(p *Properties, b []byte, i int) (int, error)
	// check validates the value(s) of a present property.
	check(p *Properties, deep bool) error
}

type propDef struct {
	name  string
	kinds uint32 // bit t set when packet type t may carry it; bit 0: will
	multi bool   // may repeat
	f     propField
}

func kinds(ts ...Type) uint32 {
	var m uint32
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

var (
	pubWill  = kinds(PUBLISH, willProperties)
	connBoth = kinds(CONNECT, CONNACK)
	acks     = kinds(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH)
	allUser  = acks | kinds(CONNECT, PUBLISH, willProperties, SUBSCRIBE, UNSUBSCRIBE)
)

// propTable is indexed by property identifier (section 2.2.2.2).
var propTable = [0x2B]*propDef{
	0x01: {"payload format indicator", pubWill, false, byteField{func(p *Properties) **byte { return &p.PayloadFormatIndicator }, true}},
	0x02: {"message expiry interval", pubWill, false, u32Field{func(p *Properties) **uint32 { return &p.MessageExpiryInterval }, false}},
	0x03: {"content type", pubWill, false, strField(func(p *Properties) **string { return &p.ContentType })},
	0x08: {"response topic", pubWill, false, strField(func(p *Properties) **string { return &p.ResponseTopic })},
	0x09: {"correlation data", pubWill, false, binField(func(p *Properties) *[]byte { return &p.CorrelationData })},
	0x0B: {"subscription identifier", kinds(PUBLISH, SUBSCRIBE), true, subIDField{}},
	0x11: {"session expiry interval", kinds(CONNECT, CONNACK, DISCONNECT), false, u32Field{func(p *Properties) **uint32 { return &p.SessionExpiryInterval }, false}},
	0x12: {"assigned client identifier", kinds(CONNACK), false, strField(func(p *Properties) **string { return &p.AssignedClientIdentifier })},
	0x13: {"server keep alive", kinds(CONNACK), false, u16Field{func(p *Properties) **uint16 { return &p.ServerKeepAlive }, false, 0}},
	0x15: {"authentication method", kinds(CONNECT, CONNACK, AUTH), false, strField(func(p *Properties) **string { return &p.AuthenticationMethod })},
	0x16: {"authentication data", kinds(CONNECT, CONNACK, AUTH), false, binField(func(p *Properties) *[]byte { return &p.AuthenticationData })},
	0x17: {"request problem information", kinds(CONNECT), false, byteField{func(p *Properties) **byte { return &p.RequestProblemInformation }, true}},
	0x18: {"will delay interval", kinds(willProperties), false, u32Field{func(p *Properties) **uint32 { return &p.WillDelayInterval }, false}},
	0x19: {"request response information", kinds(CONNECT), false, byteField{func(p *Properties) **byte { return &p.RequestResponseInformation }, true}},
	0x1A: {"response information", kinds(CONNACK), false, strField(func(p *Properties) **string { return &p.ResponseInformation })},
	0x1C: {"server reference", kinds(CONNACK, DISCONNECT), false, strField(func(p *Properties) **string { return &p.ServerReference })},
	0x1F: {"reason string", acks, false, strField(func(p *Properties) **string { return &p.ReasonString })},
	0x21: {"receive maximum", connBoth, false, u16Field{func(p *Properties) **uint16 { return &p.ReceiveMaximum }, true, 0}},
	0x22: {"topic alias maximum", connBoth, false, u16Field{func(p *Properties) **uint16 { return &p.TopicAliasMaximum }, false, 0}},
	// A Topic Alias of 0 [MQTT-3.3.2-8] earns 0x94 Topic Alias invalid, the
	// code for every unusable alias, not a plain Protocol Error.
	0x23: {"topic alias", kinds(PUBLISH), false, u16Field{func(p *Properties) **uint16 { return &p.TopicAlias }, true, TopicAliasInvalid}},
	0x24: {"maximum QoS", kinds(CONNACK), false, byteField{func(p *Properties) **byte { return &p.MaximumQoS }, true}},
	0x25: {"retain available", kinds(CONNACK), false, byteField{func(p *Properties) **byte { return &p.RetainAvailable }, true}},
	0x26: {"user property", allUser, true, userField{}},
	0x27: {"maximum packet size", connBoth, false, u32Field{func(p *Properties) **uint32 { return &p.MaximumPacketSize }, true}},
	0x28: {"wildcard subscription available", kinds(CONNACK), false, byteField{func(p *Properties) **byte { return &p.WildcardSubscriptionAvailable }, true}},
	0x29: {"subscription identifier available", kinds(CONNACK), false, byteField{func(p *Properties) **byte { return &p.SubscriptionIdentifierAvailable }, true}},
	0x2A: {"shared subscription available", kinds(CONNACK), false, byteField{func(p *Properties) **byte { return &p.SharedSubscriptionAvailable }, true}},
}

func contextName(t Type) string {
	if t == willProperties {
		return "will properties"
	}
	return t.String()
}

// decode reads a Property Length and the properties that follow (section
// 2.2.2) into p, which must be zero, for packet type t (or willProperties),
// within the user property limits of o (nil: none).
func (p *Properties) decode(b []byte, i int, t Type, o *DecodeOptions) (int, error) {
	n, i, err := decodeVarint(b, i)
	if err != nil {
		return i, err
	}
	end := i + int(n)
	if end > len(b) {
		return i, malformed("%s: property length %d overruns packet", contextName(t), n)
	}
	b = b[:end]
	var seen uint64
	users := userLimits{o: o}
	for i < end {
		var id uint32
		if id, i, err = decodeVarint(b, i); err != nil {
			return i, err
		}
		if int(id) >= len(propTable) || propTable[id] == nil {
			return i, malformed("%s: unknown property identifier 0x%02X", contextName(t), id)
		}
		def := propTable[id]
		if def.kinds&(1<<t) == 0 {
			return i, malformed("%s: %s not allowed", contextName(t), def.name)
		}
		if seen&(1<<id) != 0 && !def.multi {
			return i, protocolErr("%s: %s included more than once", contextName(t), def.name)
		}
		seen |= 1 << id
		if id == 0x26 {
			if err := users.admit(t, b, i); err != nil {
				return i, err
			}
		}
		if i, err = def.f.decode(p, b, i); err != nil {
			return i, annotate(err, def.name)
		}
	}
	return end, p.validate(t, false)
}

// validate checks that every present property is allowed in t and holds a
// legal value. deep also re-validates strings (decoding already has).
func (p *Properties) validate(t Type, deep bool) error {
	if p.empty() {
		return nil
	}
	for id, def := range propTable {
		if def == nil || def.f.size(p) == 0 {
			continue
		}
		if def.kinds&(1<<t) == 0 {
			return malformed("%s: %s not allowed", contextName(t), def.name)
		}
		if err := def.f.check(p, deep); err != nil {
			return annotate(err, fmt.Sprintf("%s: property 0x%02X %s", contextName(t), id, def.name))
		}
	}
	if len(p.SubscriptionIdentifiers) > 1 && t != PUBLISH {
		return protocolErr("%s: subscription identifier included more than once", contextName(t))
	}
	// It is a Protocol Error to include Authentication Data if there is no
	// Authentication Method (sections 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3).
	if p.AuthenticationData != nil && p.AuthenticationMethod == nil {
		return protocolErr("%s: authentication data without authentication method", contextName(t))
	}
	return nil
}

// empty reports whether no property is set: most packets a broker sends
// (acks, forwarded publishes without properties) carry none, and walking
// the property table for them was a visible share of encoding.
// TestEmptyCoversEveryField keeps it in step with the struct.
func (p *Properties) empty() bool {
	return p.CorrelationData == nil && len(p.SubscriptionIdentifiers) == 0 && p.AuthenticationData == nil &&
		len(p.User) == 0 && p.noMessageProps() && p.noConnectProps() && p.noConnackProps()
}

func (p *Properties) noMessageProps() bool {
	return p.PayloadFormatIndicator == nil && p.MessageExpiryInterval == nil && p.ContentType == nil &&
		p.ResponseTopic == nil && p.TopicAlias == nil && p.ReasonString == nil && p.WillDelayInterval == nil
}

func (p *Properties) noConnectProps() bool {
	return p.SessionExpiryInterval == nil && p.AuthenticationMethod == nil && p.RequestProblemInformation == nil &&
		p.RequestResponseInformation == nil && p.ReceiveMaximum == nil && p.TopicAliasMaximum == nil &&
		p.MaximumPacketSize == nil
}

func (p *Properties) noConnackProps() bool {
	return p.AssignedClientIdentifier == nil && p.ServerKeepAlive == nil && p.ResponseInformation == nil &&
		p.ServerReference == nil && p.MaximumQoS == nil && p.RetainAvailable == nil &&
		p.WildcardSubscriptionAvailable == nil && p.SubscriptionIdentifierAvailable == nil &&
		p.SharedSubscriptionAvailable == nil
}

// size returns the length of the encoded properties, without the Property
// Length itself.
func (p *Properties) size() int {
	if p.empty() {
		return 0
	}
	n := 0
	for _, def := range propTable {
		if def != nil {
			n += def.f.size(p)
		}
	}
	return n
}

// encodedLen returns the length of Property Length plus properties, and
// the properties length alone.
func (p *Properties) encodedLen() (total, n int) {
	n = p.size()
	return VarintSize(uint32(n)) + n, n
}

// appendProps appends the Property Length n and the properties.
func (p *Properties) appendProps(dst []byte, n int) []byte {
	dst = appendVarint(dst, uint32(n))
	if n == 0 {
		return dst
	}
	for id, def := range propTable {
		if def != nil && def.f.size(p) > 0 {
			dst = def.f.appendTo(dst, byte(id), p)
		}
	}
	return dst
}

type byteField struct {
	get  func(*Properties) **byte
	flag bool // only 0 or 1 allowed
}

func (f byteField) size(p *Properties) int { return presentSize(*f.get(p) != nil, 2) }
func (f byteField) appendTo(dst []byte, id byte, p *Properties) []byte {
	return append(dst, id, **f.get(p))
}
func (f byteField) decode(p *Properties, b []byte, i int) (int, error) {
	v, i, err := decodeByte(b, i)
	*f.get(p) = &v
	return i, err
}
func (f byteField) check(p *Properties, _ bool) error {
	if v := **f.get(p); f.flag && v > 1 {
		return protocolErr("value %d is not 0 or 1", v)
	}
	return nil
}

type u16Field struct {
	get     func(*Properties) **uint16
	nonZero bool
	// zeroCode is the Reason Code for a forbidden 0; ProtocolError when
	// unset.
	zeroCode ReasonCode
}

func (f u16Field) size(p *Properties) int { return presentSize(*f.get(p) != nil, 3) }
func (f u16Field) appendTo(dst []byte, id byte, p *Properties) []byte {
	return appendUint16(append(dst, id), **f.get(p))
}
func (f u16Field) decode(p *Properties, b []byte, i int) (int, error) {
	v, i, err := decodeUint16(b, i)
	*f.get(p) = &v
	return i, err
}
func (f u16Field) check(p *Properties, _ bool) error {
	if f.nonZero && **f.get(p) == 0 {
		return errorf(cmp.Or(f.zeroCode, ProtocolError), "value 0 not allowed")
	}
	return nil
}

type u32Field struct {
	get     func(*Properties) **uint32
	nonZero bool
}

func (f u32Field) size(p *Properties) int { return presentSize(*f.get(p) != nil, 5) }
func (f u32Field) appendTo(dst []byte, id byte, p *Properties) []byte {
	return appendUint32(append(dst, id), **f.get(p))
}
func (f u32Field) decode(p *Properties, b []byte, i int) (int, error) {
	v, i, err := decodeUint32(b, i)
	*f.get(p) = &v
	return i, err
}
func (f u32Field) check(p *Properties, _ bool) error {
	if f.nonZero && **f.get(p) == 0 {
		return protocolErr("value 0 not allowed")
	}
	return nil
}

type strField func(*Properties) **string

func (f strField) size(p *Properties) int {
	if s := *f(p); s != nil {
		return 3 + len(*s)
	}
	return 0
}
func (f strField) appendTo(dst []byte, id byte, p *Properties) []byte {
	return appendString(append(dst, id), **f(p))
}
func (f strField) decode(p *Properties, b []byte, i int) (int, error) {
	v, i, err := decodeString(b, i)
	*f(p) = &v
	return i, err
}
func (f strField) check(p *Properties, deep bool) error {
	if deep {
		return validString(**f(p))
	}
	return nil
}

type binField func(*Properties) *[]byte

func (f binField) size(p *Properties) int {
	if v := *f(p); v != nil {
		return 3 + len(v)
	}
	return 0
}
func (f binField) appendTo(dst []byte, id byte, p *Properties) []byte {
	return appendBinary(append(dst, id), *f(p))
}
func (f binField) decode(p *Properties, b []byte, i int) (int, error) {
	v, i, err := decodeBinary(b, i)
	*f(p) = v
	return i, err
}
func (f binField) check(p *Properties, _ bool) error { return validBinary(*f(p)) }

type subIDField struct{}

func (subIDField) size(p *Properties) int {
	n := 0
	for _, v := range p.SubscriptionIdentifiers {
		n += 1 + max(VarintSize(v), 1)
	}
	return n
}
func (subIDField) appendTo(dst []byte, id byte, p *Properties) []byte {
	for _, v := range p.SubscriptionIdentifiers {
		dst = appendVarint(append(dst, id), v)
	}
	return dst
}
func (subIDField) decode(p *Properties, b []byte, i int) (int, error) {
	v, i, err := decodeVarint(b, i)
	p.SubscriptionIdentifiers = append(p.SubscriptionIdentifiers, v)
	return i, err
}
func (subIDField) check(p *Properties, _ bool) error {
	for _, v := range p.SubscriptionIdentifiers {
		if v == 0 || v > MaxVarint {
			return protocolErr("subscription identifier %d outside 1..%d", v, MaxVarint)
		}
	}
	return nil
}

type userField struct{}

func (userField) size(p *Properties) int {
	n := 0
	for _, u := range p.User {
		n += 5 + len(u.Key) + len(u.Value)
	}
	return n
}
func (userField) appendTo(dst []byte, id byte, p *Properties) []byte {
	for _, u := range p.User {
		dst = appendString(appendString(append(dst, id), u.Key), u.Value)
	}
	return dst
}
func (userField) decode(p *Properties, b []byte, i int) (int, error) {
	u, i, err := decodeStringPair(b, i)
	p.User = append(p.User, u)
	return i, err
}
func (userField) check(p *Properties, deep bool) error {
	if !deep {
		return nil
	}
	for _, u := range p.User {
		if err := validString(u.Key); err != nil {
			return err
		}
		if err := validString(u.Value); err != nil {
			return err
		}
	}
	return nil
}

func presentSize(present bool, n int) int {
	if present {
		return n
	}
	return 0
}
