package packet

import "strings"

// Publish is the PUBLISH packet (section 3.3). PacketID is present on the
// wire only for QoS 1 and 2. Payload aliases the decoded buffer.
//
// The codec checks what a single packet can show: QoS, DUP, the packet
// identifier, wildcards in the topic name and properties allowed in
// PUBLISH. Direction and state rules (a client must not send Subscription
// Identifiers [MQTT-3.3.4-6], topic alias ranges, payload format
// validation) are the server's.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string // may be empty in 5.0 when Properties.TopicAlias is set
	PacketID   uint16
	Properties Properties
	Payload    []byte
}

// Type returns PUBLISH.
func (*Publish) Type() Type { return PUBLISH }

// AppendTo appends the encoded packet to dst; see Append.
func (p *Publish) AppendTo(dst []byte, version byte) ([]byte, error) {
	return Append(dst, p, version)
}

func (p *Publish) flags() byte {
	return boolBit(p.Dup, 0x08) | p.QoS<<1 | boolBit(p.Retain, 0x01)
}

func (p *Publish) decode(flags byte, b []byte, version byte, o *DecodeOptions) error {
	p.Dup, p.QoS, p.Retain = flags&0x08 != 0, flags>>1&0x03, flags&0x01 != 0
	if err := p.checkHeader(); err != nil {
		return err
	}
	var err error
	i := 0
	if p.Topic, i, err = decodeString(b, i); err != nil {
		return err
	}
	if p.QoS > 0 {
		if p.PacketID, i, err = decodeUint16(b, i); err != nil {
			return err
		}
		if err := checkPacketID(PUBLISH, p.PacketID); err != nil {
			return err
		}
	}
	if version == V5 {
		if i, err = p.Properties.decode(b, i, PUBLISH, o); err != nil {
			return err
		}
	}
	if err := checkTopicName(p.Topic, version == V5 && p.Properties.TopicAlias != nil); err != nil {
		return err
	}
	p.Payload = b[i:]
	return nil
}

func (p *Publish) checkHeader() error {
	if p.QoS > 2 {
		return malformed("PUBLISH QoS 3 [MQTT-3.3.1-4]")
	}
	if p.Dup && p.QoS == 0 {
		return protocolErr("PUBLISH DUP set on QoS 0 [MQTT-3.3.1-2]")
	}
	return nil
}

func (p *Publish) bodyLen(version byte) (int, error) {
	if err := p.checkHeader(); err != nil {
		return 0, err
	}
	if err := validString(p.Topic); err != nil {
		return 0, err
	}
	if err := checkTopicName(p.Topic, version == V5 && p.Properties.TopicAlias != nil); err != nil {
		return 0, err
	}
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		if err := checkPacketID(PUBLISH, p.PacketID); err != nil {
			return 0, err
		}
		n += 2
	}
	if version == V5 {
		if err := p.Properties.validate(PUBLISH, true); err != nil {
			return 0, err
		}
		pl, _ := p.Properties.encodedLen()
		n += pl
	}
	return n, nil
}

func (p *Publish) appendBody(dst []byte, version byte) []byte {
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if version == V5 {
		_, n := p.Properties.encodedLen()
		dst = p.Properties.appendProps(dst, n)
	}
	return append(dst, p.Payload...)
}

// checkTopicName applies the rules a topic name shows on its own: no
// wildcards [MQTT-3.3.2-2] and at least one character [MQTT-4.7.3-1], unless
// a 5.0 Topic Alias stands in for it (section 3.3.2.3.4). Anything deeper
// (levels, $SYS) is for the topic package.
func checkTopicName(topic string, aliased bool) error {
	if topic == "" && !aliased {
		return protocolErr("empty topic name without topic alias [MQTT-4.7.3-1]")
	}
	if strings.ContainsAny(topic, "+#") {
		return errorf(TopicNameInvalid, "topic name %q contains a wildcard [MQTT-3.3.2-2]", topic)
	}
	return nil
}

// checkPacketID rejects packet identifier 0 [MQTT-2.2.1-3].
func checkPacketID(t Type, id uint16) error {
	if id == 0 {
		return protocolErr("%s with packet identifier 0 [MQTT-2.2.1-3]", t)
	}
	return nil
}

// Puback is the PUBACK packet (section 3.4), the answer to a QoS 1 PUBLISH.
// ReasonCode and Properties exist on the wire only in 5.0, where the short
// forms are used when encoding: Remaining Length 2 for Success without
// properties, 3 without properties.
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubrec is the PUBREC packet (section 3.5), the first answer to a QoS 2
// PUBLISH. Its encoding follows Puback.
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubrel is the PUBREL packet (section 3.6); fixed header flags 0010
// [MQTT-3.6.1-1]. Its encoding follows Puback.
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubcomp is the PUBCOMP packet (section 3.7), the last packet of the QoS 2
// exchange. Its encoding follows Puback.
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// ackFields is the shared shape of Puback, Pubrec, Pubrel and Pubcomp; each
// converts itself to *ackFields to reuse one implementation.
type ackFields struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns PUBACK.
func (*Puback) Type() Type { return PUBACK }

// Type returns PUBREC.
func (*Pubrec) Type() Type { return PUBREC }

// Type returns PUBREL.
func (*Pubrel) Type() Type { return PUBREL }

// Type returns PUBCOMP.
func (*Pubcomp) Type() Type { return PUBCOMP }

// AppendTo appends the encoded packet to dst; see Append.
func (p *Puback) AppendTo(dst []byte, v byte) ([]byte, error) { return Append(dst, p, v) }

// AppendTo appends the encoded packet to dst; see Append.
func (p *Pubrec) AppendTo(dst []byte, v byte) ([]byte, error) { return Append(dst, p, v) }

// AppendTo appends the encoded packet to dst; see Append.
func (p *Pubrel) AppendTo(dst []byte, v byte) ([]byte, error) { return Append(dst, p, v) }

// AppendTo appends the encoded packet to dst; see Append.
func (p *Pubcomp) AppendTo(dst []byte, v byte) ([]byte, error) { return Append(dst, p, v) }

func (p *Puback) decode(_ byte, b []byte, v byte, o *DecodeOptions) error {
	return (*ackFields)(p).decode(PUBACK, b, v, o)
}
func (p *Pubrec) decode(_ byte, b []byte, v byte, o *DecodeOptions) error {
	return (*ackFields)(p).decode(PUBREC, b, v, o)
}
func (p *Pubrel) decode(_ byte, b []byte, v byte, o *DecodeOptions) error {
	return (*ackFields)(p).decode(PUBREL, b, v, o)
}
func (p *Pubcomp) decode(_ byte, b []byte, v byte, o *DecodeOptions) error {
	return (*ackFields)(p).decode(PUBCOMP, b, v, o)
}
func (p *Puback) bodyLen(v byte) (int, error)  { return (*ackFields)(p).bodyLen(PUBACK, v) }
func (p *Pubrec) bodyLen(v byte) (int, error)  { return (*ackFields)(p).bodyLen(PUBREC, v) }
func (p *Pubrel) bodyLen(v byte) (int, error)  { return (*ackFields)(p).bodyLen(PUBREL, v) }
func (p *Pubcomp) bodyLen(v byte) (int, error) { return (*ackFields)(p).bodyLen(PUBCOMP, v) }
func (p *Puback) appendBody(dst []byte, v byte) []byte {
	return (*ackFields)(p).appendBody(dst, v)
}
func (p *Pubrec) appendBody(dst []byte, v byte) []byte {
	return (*ackFields)(p).appendBody(dst, v)
}
func (p *Pubrel) appendBody(dst []byte, v byte) []byte {
	return (*ackFields)(p).appendBody(dst, v)
}
func (p *Pubcomp) appendBody(dst []byte, v byte) []byte {
	return (*ackFields)(p).appendBody(dst, v)
}

func (a *ackFields) decode(t Type, b []byte, version byte, o *DecodeOptions) error {
	id, i, err := decodeUint16(b, 0)
	if err != nil {
		return err
	}
	a.PacketID = id
	if err := checkPacketID(t, id); err != nil {
		return err
	}
	if version < V5 {
		if len(b) != 2 {
			return malformed("%s remaining length %d, want 2", t, len(b))
		}
		return nil
	}
	return decodeReasonAndProps(b, i, t, &a.ReasonCode, &a.Properties, o)
}

// decodeReasonAndProps reads the optional 5.0 Reason Code and properties
// that end PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH: an absent
// Reason Code means Success and an absent Property Length means none.
func decodeReasonAndProps(b []byte, i int, t Type, rc *ReasonCode, props *Properties, o *DecodeOptions) error {
	if i == len(b) {
		return nil
	}
	c, i, err := decodeByte(b, i)
	if err != nil {
		return err
	}
	*rc = ReasonCode(c)
	if err := checkCode(*rc, t, V5); err != nil {
		return err
	}
	if i == len(b) {
		return nil
	}
	if i, err = props.decode(b, i, t, o); err != nil {
		return err
	}
	if i != len(b) {
		return malformed("%s has %d trailing bytes", t, len(b)-i)
	}
	return nil
}

func (a *ackFields) bodyLen(t Type, version byte) (int, error) {
	if err := checkPacketID(t, a.PacketID); err != nil {
		return 0, err
	}
	if version < V5 {
		return 2, nil
	}
	n, err := reasonAndPropsLen(t, a.ReasonCode, &a.Properties)
	return 2 + n, err
}

// reasonAndPropsLen validates and sizes the shortest 5.0 form of an
// optional Reason Code and properties.
func reasonAndPropsLen(t Type, rc ReasonCode, props *Properties) (int, error) {
	if err := checkCode(rc, t, V5); err != nil {
		return 0, err
	}
	if err := props.validate(t, true); err != nil {
		return 0, err
	}
	switch pl, n := props.encodedLen(); {
	case n > 0:
		return 1 + pl, nil
	case rc != Success:
		return 1, nil
	}
	return 0, nil
}

func (a *ackFields) appendBody(dst []byte, version byte) []byte {
	dst = appendUint16(dst, a.PacketID)
	if version < V5 {
		return dst
	}
	return appendReasonAndProps(dst, a.ReasonCode, &a.Properties)
}

func appendReasonAndProps(dst []byte, rc ReasonCode, props *Properties) []byte {
	_, n := props.encodedLen()
	if n > 0 {
		return props.appendProps(append(dst, byte(rc)), n)
	}
	if rc != Success {
		return append(dst, byte(rc))
	}
	return dst
}
