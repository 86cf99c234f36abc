package packet

// Connect is the CONNECT packet (section 3.1), the first packet a client
// sends. It carries its own protocol version: when encoding, a non-zero
// ProtocolVersion wins over the version argument, and the protocol name is
// derived from the version ("MQIsdp" for V31, "MQTT" otherwise).
type Connect struct {
	ProtocolName    string // as decoded; ignored when encoding
	ProtocolVersion byte   // V31, V311 or V5
	// CleanStart is Clean Session in 3.1 and 3.1.1.
	CleanStart bool
	KeepAlive  uint16 // seconds; 0 disables keep alive
	Properties Properties
	ClientID   string

	WillFlag       bool
	WillQoS        byte
	WillRetain     bool
	WillProperties Properties
	WillTopic      string
	WillPayload    []byte

	UsernameFlag bool
	Username     string
	PasswordFlag bool
	Password     []byte
}

// Type returns CONNECT.
func (*Connect) Type() Type { return CONNECT }

// AppendTo appends the encoded packet to dst; see Append.
func (c *Connect) AppendTo(dst []byte, version byte) ([]byte, error) {
	return Append(dst, c, version)
}

func (c *Connect) encodeVersion(version byte) byte {
	if c.ProtocolVersion != 0 {
		return c.ProtocolVersion
	}
	return version
}

func protocolName(version byte) string {
	if version == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

const (
	flagReserved   = 0x01
	flagCleanStart = 0x02
	flagWill       = 0x04
	flagWillRetain = 0x20
	flagPassword   = 0x40
	flagUsername   = 0x80
)

func (c *Connect) decode(_ byte, b []byte, _ byte, o *DecodeOptions) error {
	i, err := c.decodeProtocol(b)
	if err != nil {
		return err
	}
	level := c.ProtocolVersion
	if i, err = c.decodeFlags(b, i); err != nil {
		return err
	}
	if c.KeepAlive, i, err = decodeUint16(b, i); err != nil {
		return err
	}
	if level == V5 {
		if i, err = c.Properties.decode(b, i, CONNECT, o); err != nil {
			return err
		}
	}
	if c.ClientID, i, err = decodeString(b, i); err != nil {
		return err
	}
	if i, err = c.decodePayload(b, i, level, o); err != nil {
		return err
	}
	if i != len(b) {
		return malformed("CONNECT has %d trailing bytes", len(b)-i)
	}
	return c.checkClientID(level)
}

// decodeProtocol reads the protocol name and level (sections 3.1.2.1,
// 3.1.2.2). It sets ProtocolVersion before judging it, so a rejected CONNECT
// still says which version to answer in.
func (c *Connect) decodeProtocol(b []byte) (int, error) {
	name, i, err := decodeString(b, 0)
	if err != nil {
		return i, err
	}
	level, i, err := decodeByte(b, i)
	if err != nil {
		return i, err
	}
	c.ProtocolName, c.ProtocolVersion = name, level
	// [MQTT-3.1.2-1] [MQTT-3.1.2-2]: an unknown name or level is answered
	// with CONNACK 0x84 (5.0) or return code 0x01 (3.1.1).
	if !validVersion(level) || name != protocolName(level) {
		return i, errorf(UnsupportedProtocolVersion, "CONNECT protocol %q level %d", name, level)
	}
	return i, nil
}

// decodeFlags reads the Connect Flags (section 3.1.2.3).
func (c *Connect) decodeFlags(b []byte, i int) (int, error) {
	cf, i, err := decodeByte(b, i)
	if err != nil {
		return i, err
	}
	if cf&flagReserved != 0 {
		return i, malformed("CONNECT reserved flag set [MQTT-3.1.2-3]")
	}
	c.CleanStart = cf&flagCleanStart != 0
	c.WillFlag = cf&flagWill != 0
	c.WillQoS = cf >> 3 & 0x03
	c.WillRetain = cf&flagWillRetain != 0
	c.PasswordFlag = cf&flagPassword != 0
	c.UsernameFlag = cf&flagUsername != 0
	return i, c.checkFlags(c.ProtocolVersion)
}

// decodePayload reads the will, user name and password (section 3.1.3).
func (c *Connect) decodePayload(b []byte, i int, version byte, o *DecodeOptions) (int, error) {
	var err error
	if c.WillFlag {
		if version == V5 {
			if i, err = c.WillProperties.decode(b, i, willProperties, o); err != nil {
				return i, err
			}
		}
		if c.WillTopic, i, err = decodeString(b, i); err != nil {
			return i, err
		}
		if err = checkTopicName(c.WillTopic, false); err != nil {
			return i, err
		}
		if c.WillPayload, i, err = decodeBinary(b, i); err != nil {
			return i, err
		}
	}
	if c.UsernameFlag {
		if c.Username, i, err = decodeString(b, i); err != nil {
			return i, err
		}
	}
	if c.PasswordFlag {
		if c.Password, i, err = decodeBinary(b, i); err != nil {
			return i, err
		}
	}
	return i, nil
}

// checkFlags applies the Connect Flags rules (section 3.1.2.3).
func (c *Connect) checkFlags(version byte) error {
	if !c.WillFlag && (c.WillQoS != 0 || c.WillRetain) {
		return malformed("CONNECT will QoS or retain without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]")
	}
	if c.WillQoS > 2 {
		return malformed("CONNECT will QoS 3 [MQTT-3.1.2-12]")
	}
	if version < V5 && c.PasswordFlag && !c.UsernameFlag {
		return malformed("CONNECT password without user name [MQTT-3.1.2-22]")
	}
	return nil
}

// checkClientID applies the version-specific Client Identifier rules.
func (c *Connect) checkClientID(version byte) error {
	if c.ClientID != "" {
		return nil
	}
	switch version {
	case V31:
		return errorf(ClientIdentifierNotValid, "MQTT 3.1 CONNECT with empty client identifier")
	case V311:
		if !c.CleanStart {
			return errorf(ClientIdentifierNotValid, "empty client identifier needs clean session [MQTT-3.1.3-7] [MQTT-3.1.3-8]")
		}
	}
	return nil // 5.0: the server assigns one [MQTT-3.1.3-6]
}

func (c *Connect) validate(version byte) error {
	if err := c.checkFlags(version); err != nil {
		return err
	}
	if err := c.checkClientID(version); err != nil {
		return err
	}
	for _, s := range []string{c.ClientID, c.Username, c.WillTopic} {
		if err := validString(s); err != nil {
			return err
		}
	}
	if err := validBinary(c.Password); err != nil {
		return err
	}
	if err := validBinary(c.WillPayload); err != nil {
		return err
	}
	if c.WillFlag {
		if err := checkTopicName(c.WillTopic, false); err != nil {
			return err
		}
	}
	if version == V5 {
		if err := c.Properties.validate(CONNECT, true); err != nil {
			return err
		}
		return c.WillProperties.validate(willProperties, true)
	}
	return nil
}

func (c *Connect) bodyLen(version byte) (int, error) {
	if err := c.validate(version); err != nil {
		return 0, err
	}
	n := 2 + len(protocolName(version)) + 1 + 1 + 2 + 2 + len(c.ClientID)
	if version == V5 {
		pl, _ := c.Properties.encodedLen()
		n += pl
	}
	if c.WillFlag {
		if version == V5 {
			pl, _ := c.WillProperties.encodedLen()
			n += pl
		}
		n += 2 + len(c.WillTopic) + 2 + len(c.WillPayload)
	}
	if c.UsernameFlag {
		n += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		n += 2 + len(c.Password)
	}
	return n, nil
}

func (c *Connect) appendBody(dst []byte, version byte) []byte {
	dst = appendString(dst, protocolName(version))
	cf := boolBit(c.CleanStart, flagCleanStart) | boolBit(c.WillFlag, flagWill) |
		c.WillQoS<<3 | boolBit(c.WillRetain, flagWillRetain) |
		boolBit(c.PasswordFlag, flagPassword) | boolBit(c.UsernameFlag, flagUsername)
	dst = appendUint16(append(dst, version, cf), c.KeepAlive)
	if version == V5 {
		_, n := c.Properties.encodedLen()
		dst = c.Properties.appendProps(dst, n)
	}
	dst = appendString(dst, c.ClientID)
	if c.WillFlag {
		if version == V5 {
			_, n := c.WillProperties.encodedLen()
			dst = c.WillProperties.appendProps(dst, n)
		}
		dst = appendBinary(appendString(dst, c.WillTopic), c.WillPayload)
	}
	if c.UsernameFlag {
		dst = appendString(dst, c.Username)
	}
	if c.PasswordFlag {
		dst = appendBinary(dst, c.Password)
	}
	return dst
}

// Connack is the CONNACK packet (section 3.2). ReasonCode holds the 5.0
// Reason Code or the 3.1/3.1.1 return code; when encoding for 3.1/3.1.1 a
// 5.0 code is translated with LegacyConnackCode. MQTT 3.1 has no session
// present flag: it is neither encoded nor decoded for V31.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Type returns CONNACK.
func (*Connack) Type() Type { return CONNACK }

// AppendTo appends the encoded packet to dst; see Append.
func (c *Connack) AppendTo(dst []byte, version byte) ([]byte, error) {
	return Append(dst, c, version)
}

func (c *Connack) decode(_ byte, b []byte, version byte, o *DecodeOptions) error {
	if version < V5 && len(b) != 2 {
		return malformed("CONNACK remaining length %d, want 2", len(b))
	}
	f, i, err := decodeByte(b, 0)
	if err != nil {
		return err
	}
	if f&0xfe != 0 && version != V31 {
		return malformed("CONNACK reserved flags set [MQTT-3.2.2-1]")
	}
	c.SessionPresent = f&0x01 != 0 && version != V31
	rc, i, err := decodeByte(b, i)
	if err != nil {
		return err
	}
	c.ReasonCode = ReasonCode(rc)
	if err := c.check(version, c.ReasonCode); err != nil {
		return err
	}
	if version == V5 {
		if i, err = c.Properties.decode(b, i, CONNACK, o); err != nil {
			return err
		}
		if i != len(b) {
			return malformed("CONNACK has %d trailing bytes", len(b)-i)
		}
	}
	return nil
}

func (c *Connack) check(version byte, rc ReasonCode) error {
	if err := checkCode(rc, CONNACK, version); err != nil {
		return err
	}
	if c.SessionPresent && rc != Success {
		return protocolErr("CONNACK session present with reason code 0x%02X [MQTT-3.2.2-6]", byte(rc))
	}
	return nil
}

func (c *Connack) code(version byte) ReasonCode {
	if version < V5 {
		return LegacyConnackCode(c.ReasonCode)
	}
	return c.ReasonCode
}

func (c *Connack) bodyLen(version byte) (int, error) {
	if err := c.check(version, c.code(version)); err != nil {
		return 0, err
	}
	if version < V5 {
		return 2, nil
	}
	if err := c.Properties.validate(CONNACK, true); err != nil {
		return 0, err
	}
	pl, _ := c.Properties.encodedLen()
	return 2 + pl, nil
}

func (c *Connack) appendBody(dst []byte, version byte) []byte {
	dst = append(dst, boolBit(c.SessionPresent && version != V31, 0x01), byte(c.code(version)))
	if version == V5 {
		_, n := c.Properties.encodedLen()
		dst = c.Properties.appendProps(dst, n)
	}
	return dst
}
