package packet

// Pingreq is the PINGREQ packet (section 3.12); it has no body.
type Pingreq struct{}

// Pingresp is the PINGRESP packet (section 3.13); it has no body.
type Pingresp struct{}

// Type returns PINGREQ.
func (*Pingreq) Type() Type { return PINGREQ }

// Type returns PINGRESP.
func (*Pingresp) Type() Type { return PINGRESP }

// AppendTo appends the encoded packet to dst; see Append.
func (p *Pingreq) AppendTo(dst []byte, v byte) ([]byte, error) { return Append(dst, p, v) }

// AppendTo appends the encoded packet to dst; see Append.
func (p *Pingresp) AppendTo(dst []byte, v byte) ([]byte, error) { return Append(dst, p, v) }

func (*Pingreq) decode(_ byte, b []byte, _ byte, _ *DecodeOptions) error {
	return emptyBody(PINGREQ, b)
}
func (*Pingresp) decode(_ byte, b []byte, _ byte, _ *DecodeOptions) error {
	return emptyBody(PINGRESP, b)
}
func (*Pingreq) bodyLen(byte) (int, error)             { return 0, nil }
func (*Pingresp) bodyLen(byte) (int, error)            { return 0, nil }
func (*Pingreq) appendBody(dst []byte, _ byte) []byte  { return dst }
func (*Pingresp) appendBody(dst []byte, _ byte) []byte { return dst }

func emptyBody(t Type, b []byte) error {
	if len(b) != 0 {
		return malformed("%s remaining length %d, want 0", t, len(b))
	}
	return nil
}

// Disconnect is the DISCONNECT packet (section 3.14). ReasonCode and
// Properties exist only in 5.0, where the short forms apply: Remaining
// Length 0 means Normal disconnection without properties, 1 a Reason Code
// without properties (section 3.14.2.1).
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns DISCONNECT.
func (*Disconnect) Type() Type { return DISCONNECT }

// AppendTo appends the encoded packet to dst; see Append.
func (d *Disconnect) AppendTo(dst []byte, v byte) ([]byte, error) { return Append(dst, d, v) }

func (d *Disconnect) decode(_ byte, b []byte, version byte, o *DecodeOptions) error {
	if version < V5 {
		return emptyBody(DISCONNECT, b)
	}
	return decodeReasonAndProps(b, 0, DISCONNECT, &d.ReasonCode, &d.Properties, o)
}

func (d *Disconnect) bodyLen(version byte) (int, error) {
	if version < V5 {
		return 0, nil
	}
	return reasonAndPropsLen(DISCONNECT, d.ReasonCode, &d.Properties)
}

func (d *Disconnect) appendBody(dst []byte, version byte) []byte {
	if version < V5 {
		return dst
	}
	return appendReasonAndProps(dst, d.ReasonCode, &d.Properties)
}

// Auth is the 5.0 AUTH packet (section 3.15) for enhanced authentication.
// Remaining Length 0 means Success without properties (section 3.15.2.1).
// It cannot be encoded for, and is a reserved type in, 3.1 and 3.1.1.
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns AUTH.
func (*Auth) Type() Type { return AUTH }

// AppendTo appends the encoded packet to dst; see Append.
func (a *Auth) AppendTo(dst []byte, v byte) ([]byte, error) { return Append(dst, a, v) }

func (a *Auth) decode(_ byte, b []byte, _ byte, o *DecodeOptions) error {
	return decodeReasonAndProps(b, 0, AUTH, &a.ReasonCode, &a.Properties, o)
}

func (a *Auth) bodyLen(byte) (int, error) {
	return reasonAndPropsLen(AUTH, a.ReasonCode, &a.Properties)
}

func (a *Auth) appendBody(dst []byte, _ byte) []byte {
	return appendReasonAndProps(dst, a.ReasonCode, &a.Properties)
}
