package packet

import "strings"

// Subscription is one Topic Filter of a SUBSCRIBE with its Subscription
// Options (section 3.8.3.1). NoLocal, RetainAsPublished and RetainHandling
// exist only in 5.0 and are ignored when encoding for earlier versions.
// Filter syntax is not checked here (an invalid filter earns a SUBACK
// failure code from the server, not a disconnect); see the topic package.
type Subscription struct {
	Filter            string
	QoS               byte // maximum QoS
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0 send retained, 1 only for new subscriptions, 2 never
}

// Subscribe is the SUBSCRIBE packet (section 3.8); fixed header flags 0010
// [MQTT-3.8.1-1].
type Subscribe struct {
	PacketID      uint16
	Properties    Properties
	Subscriptions []Subscription
}

// Type returns SUBSCRIBE.
func (*Subscribe) Type() Type { return SUBSCRIBE }

// AppendTo appends the encoded packet to dst; see Append.
func (s *Subscribe) AppendTo(dst []byte, version byte) ([]byte, error) {
	return Append(dst, s, version)
}

const (
	optNoLocal    = 0x04
	optRAP        = 0x08
	sharePrefix   = "$share/"
	optReserved5  = 0xc0
	optReserved31 = 0xfc
)

func (s *Subscribe) decode(_ byte, b []byte, version byte, o *DecodeOptions) error {
	i, err := decodeIDAndProps(b, SUBSCRIBE, version, &s.PacketID, &s.Properties, o)
	if err != nil {
		return err
	}
	for i < len(b) {
		var sub Subscription
		if sub.Filter, i, err = decodeString(b, i); err != nil {
			return err
		}
		var opts byte
		if opts, i, err = decodeByte(b, i); err != nil {
			return err
		}
		if err := sub.setOptions(opts, version); err != nil {
			return err
		}
		s.Subscriptions = append(s.Subscriptions, sub)
	}
	return s.checkSubs(version)
}

// decodeIDAndProps reads the Packet Identifier and, in 5.0, the properties
// that start SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
func decodeIDAndProps(b []byte, t Type, version byte, id *uint16, props *Properties, o *DecodeOptions) (int, error) {
	v, i, err := decodeUint16(b, 0)
	if err != nil {
		return i, err
	}
	*id = v
	if err := checkPacketID(t, v); err != nil {
		return i, err
	}
	if version == V5 {
		return props.decode(b, i, t, o)
	}
	return i, nil
}

func (sub *Subscription) setOptions(opts byte, version byte) error {
	sub.QoS = opts & 0x03
	if version < V5 {
		if opts&optReserved31 != 0 || sub.QoS == 3 {
			return malformed("SUBSCRIBE options 0x%02X for %q: reserved bits or QoS 3 [MQTT-3-8.3-4]", opts, sub.Filter)
		}
		return nil
	}
	if sub.QoS == 3 {
		return protocolErr("SUBSCRIBE maximum QoS 3 for %q (section 3.8.3.1)", sub.Filter)
	}
	if opts&optReserved5 != 0 {
		return malformed("SUBSCRIBE reserved option bits set [MQTT-3.8.3-5]")
	}
	sub.NoLocal = opts&optNoLocal != 0
	sub.RetainAsPublished = opts&optRAP != 0
	sub.RetainHandling = opts >> 4 & 0x03
	return nil
}

func (sub *Subscription) options(version byte) byte {
	if version < V5 {
		return sub.QoS
	}
	return sub.QoS | boolBit(sub.NoLocal, optNoLocal) |
		boolBit(sub.RetainAsPublished, optRAP) | sub.RetainHandling<<4
}

// checkSubs applies the rules shared by decoding and encoding.
func (s *Subscribe) checkSubs(version byte) error {
	if len(s.Subscriptions) == 0 {
		return protocolErr("SUBSCRIBE without topic filters [MQTT-3.8.3-2]")
	}
	for _, sub := range s.Subscriptions {
		if sub.QoS > 2 && version < V5 {
			return malformed("SUBSCRIBE QoS %d for %q [MQTT-3-8.3-4]", sub.QoS, sub.Filter)
		}
		if version < V5 {
			continue
		}
		if sub.QoS > 2 {
			return protocolErr("SUBSCRIBE maximum QoS %d for %q (section 3.8.3.1)", sub.QoS, sub.Filter)
		}
		if sub.RetainHandling > 2 {
			return protocolErr("SUBSCRIBE retain handling 3 for %q", sub.Filter)
		}
		if sub.NoLocal && strings.HasPrefix(sub.Filter, sharePrefix) {
			return protocolErr("SUBSCRIBE no local on shared subscription %q [MQTT-3.8.3-4]", sub.Filter)
		}
	}
	return nil
}

func (s *Subscribe) bodyLen(version byte) (int, error) {
	n, err := idAndPropsLen(SUBSCRIBE, version, s.PacketID, &s.Properties)
	if err != nil {
		return 0, err
	}
	if err := s.checkSubs(version); err != nil {
		return 0, err
	}
	for _, sub := range s.Subscriptions {
		if err := validString(sub.Filter); err != nil {
			return 0, err
		}
		n += 2 + len(sub.Filter) + 1
	}
	return n, nil
}

func idAndPropsLen(t Type, version byte, id uint16, props *Properties) (int, error) {
	if err := checkPacketID(t, id); err != nil {
		return 0, err
	}
	if version < V5 {
		return 2, nil
	}
	if err := props.validate(t, true); err != nil {
		return 0, err
	}
	pl, _ := props.encodedLen()
	return 2 + pl, nil
}

func appendIDAndProps(dst []byte, version byte, id uint16, props *Properties) []byte {
	dst = appendUint16(dst, id)
	if version == V5 {
		_, n := props.encodedLen()
		dst = props.appendProps(dst, n)
	}
	return dst
}

func (s *Subscribe) appendBody(dst []byte, version byte) []byte {
	dst = appendIDAndProps(dst, version, s.PacketID, &s.Properties)
	for _, sub := range s.Subscriptions {
		dst = append(appendString(dst, sub.Filter), sub.options(version))
	}
	return dst
}

// Suback is the SUBACK packet (section 3.9): one Reason Code per topic
// filter of the SUBSCRIBE, in order. Encoding for 3.1/3.1.1 turns every
// failure code (0x80 and above) into SubackFailure.
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Type returns SUBACK.
func (*Suback) Type() Type { return SUBACK }

// AppendTo appends the encoded packet to dst; see Append.
func (s *Suback) AppendTo(dst []byte, version byte) ([]byte, error) {
	return Append(dst, s, version)
}

func (s *Suback) decode(_ byte, b []byte, version byte, o *DecodeOptions) error {
	i, err := decodeIDAndProps(b, SUBACK, version, &s.PacketID, &s.Properties, o)
	if err != nil {
		return err
	}
	s.ReasonCodes, err = decodeCodes(b[i:], SUBACK, version)
	return err
}

func decodeCodes(b []byte, t Type, version byte) ([]ReasonCode, error) {
	if len(b) == 0 {
		return nil, protocolErr("%s without reason codes", t)
	}
	codes := make([]ReasonCode, len(b))
	for i, c := range b {
		codes[i] = ReasonCode(c)
		if err := checkCode(codes[i], t, version); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

func subackCode(c ReasonCode, version byte) ReasonCode {
	if version < V5 && c.IsError() {
		return SubackFailure
	}
	return c
}

func checkCodes(codes []ReasonCode, t Type, version byte) error {
	if len(codes) == 0 {
		return protocolErr("%s without reason codes", t)
	}
	for _, c := range codes {
		if t == SUBACK {
			c = subackCode(c, version)
		}
		if err := checkCode(c, t, version); err != nil {
			return err
		}
	}
	return nil
}

func (s *Suback) bodyLen(version byte) (int, error) {
	n, err := idAndPropsLen(SUBACK, version, s.PacketID, &s.Properties)
	if err != nil {
		return 0, err
	}
	if err := checkCodes(s.ReasonCodes, SUBACK, version); err != nil {
		return 0, err
	}
	return n + len(s.ReasonCodes), nil
}

func (s *Suback) appendBody(dst []byte, version byte) []byte {
	dst = appendIDAndProps(dst, version, s.PacketID, &s.Properties)
	for _, c := range s.ReasonCodes {
		dst = append(dst, byte(subackCode(c, version)))
	}
	return dst
}

// Unsubscribe is the UNSUBSCRIBE packet (section 3.10); fixed header flags
// 0010 [MQTT-3.10.1-1].
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Type returns UNSUBSCRIBE.
func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

// AppendTo appends the encoded packet to dst; see Append.
func (u *Unsubscribe) AppendTo(dst []byte, version byte) ([]byte, error) {
	return Append(dst, u, version)
}

func (u *Unsubscribe) decode(_ byte, b []byte, version byte, o *DecodeOptions) error {
	i, err := decodeIDAndProps(b, UNSUBSCRIBE, version, &u.PacketID, &u.Properties, o)
	if err != nil {
		return err
	}
	for i < len(b) {
		var f string
		if f, i, err = decodeString(b, i); err != nil {
			return err
		}
		u.Filters = append(u.Filters, f)
	}
	if len(u.Filters) == 0 {
		return protocolErr("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")
	}
	return nil
}

func (u *Unsubscribe) bodyLen(version byte) (int, error) {
	n, err := idAndPropsLen(UNSUBSCRIBE, version, u.PacketID, &u.Properties)
	if err != nil {
		return 0, err
	}
	if len(u.Filters) == 0 {
		return 0, protocolErr("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")
	}
	for _, f := range u.Filters {
		if err := validString(f); err != nil {
			return 0, err
		}
		n += 2 + len(f)
	}
	return n, nil
}

func (u *Unsubscribe) appendBody(dst []byte, version byte) []byte {
	dst = appendIDAndProps(dst, version, u.PacketID, &u.Properties)
	for _, f := range u.Filters {
		dst = appendString(dst, f)
	}
	return dst
}

// Unsuback is the UNSUBACK packet (section 3.11). Properties and
// ReasonCodes (one per topic filter) exist only in 5.0; encoding for
// 3.1/3.1.1 ignores them and decoding leaves them empty.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Type returns UNSUBACK.
func (*Unsuback) Type() Type { return UNSUBACK }

// AppendTo appends the encoded packet to dst; see Append.
func (u *Unsuback) AppendTo(dst []byte, version byte) ([]byte, error) {
	return Append(dst, u, version)
}

func (u *Unsuback) decode(_ byte, b []byte, version byte, o *DecodeOptions) error {
	i, err := decodeIDAndProps(b, UNSUBACK, version, &u.PacketID, &u.Properties, o)
	if err != nil {
		return err
	}
	if version < V5 {
		if len(b) != 2 {
			return malformed("UNSUBACK remaining length %d, want 2", len(b))
		}
		return nil
	}
	u.ReasonCodes, err = decodeCodes(b[i:], UNSUBACK, version)
	return err
}

func (u *Unsuback) bodyLen(version byte) (int, error) {
	n, err := idAndPropsLen(UNSUBACK, version, u.PacketID, &u.Properties)
	if err != nil || version < V5 {
		return n, err
	}
	if err := checkCodes(u.ReasonCodes, UNSUBACK, version); err != nil {
		return 0, err
	}
	return n + len(u.ReasonCodes), nil
}

func (u *Unsuback) appendBody(dst []byte, version byte) []byte {
	dst = appendIDAndProps(dst, version, u.PacketID, &u.Properties)
	if version < V5 {
		return dst
	}
	for _, c := range u.ReasonCodes {
		dst = append(dst, byte(c))
	}
	return dst
}
