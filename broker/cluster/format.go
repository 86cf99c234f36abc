package cluster

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/store"
)

// The cluster's entry format. A leader writes log entries in the format
// the cluster agreed on, never in one a member cannot read:
//
//  1. Every member reads format 1. A member answers, on its replication
//     port, the highest format its build reads (formatQueryMagic, the same
//     mutual authentication as Raft's connections; a build that predates
//     the question refuses the connection, which counts as format 1).
//  2. A serving leader whose store records a lower format than its build
//     reads asks every other server of the latest Raft configuration
//     (voters and non-voters, including additions not yet committed);
//     once each answers, under the ID the configuration gives it, that it
//     reads the new format, the leader commits a format entry
//     (store.FormatEntry). A member's FSM records it in its store, in the
//     Pebble batch of its applied index, so it survives restarts and
//     travels in snapshots.
//  3. A leader encodes entries in the format its store records, which it
//     learns by applying the format entry: every entry in that format is
//     after the format entry in the log.
//  4. A member that applies a format entry above what it reads, or meets
//     an entry in a format it cannot read, stops before applying it (a
//     build that predates this scheme stops at the format entry as at any
//     entry in a newer format): it never applies anything past it, so it
//     never diverges; a newer build replays from there.
//
// Safety (no member applying something it misreads) rests on 4 alone;
// 1-2 are what keeps members from stopping: only a member replaced by an
// older build between the leader's question and the format entry, or
// added by another route meanwhile, can still meet it. AddMember closes
// the second: while the cluster's format is above 1, it adds only a member
// that answers that it reads it, and it does not run beside step 2.
// A format never goes down: a downgraded member stops, and must be
// emptied to rejoin (it then receives a snapshot; a build that cannot read
// the format stops at the next entry).

// formatQueryMagic opens a replication connection that asks for the
// member's format; as long as handshakeMagic.
const formatQueryMagic = "BOLLARD-FMTQ/1\n"

// maxMemberIDLen bounds a member ID in a format answer.
const maxMemberIDLen = 1024

// formatCheck is how often a serving leader whose cluster writes a lower
// format than its build reads asks the members again (a variable for
// tests).
var formatCheck = 5 * time.Second

// errNoFormatAnswer: the peer accepted the connection and closed it at
// the question, as a build that predates format queries does.
var errNoFormatAnswer = errors.New("the member closed the connection at the question: a build that does not know format queries")

// formatInfo is what a member answers: its ID and the format it reads.
type formatInfo struct {
	id    string
	reads uint8
}

// answerFormat answers a format query on an authenticated connection:
//
//	format(1) uint16(len(id)) id HMAC(secret, "F" | nonceD | nonceL | format..id)
func (s *streamLayer) answerFormat(c net.Conn, hs handshake) {
	fi := s.format.Load()
	body := append([]byte{fi.reads}, binary.BigEndian.AppendUint16(nil, uint16(len(fi.id)))...)
	body = append(body, fi.id...)
	if _, err := c.Write(append(body, s.mac('F', hs.nd, append(append([]byte(nil), hs.nl...), body...))...)); err != nil {
		s.log.Debug("format query: answer failed", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// queryFormat asks the member at address which format it reads, and
// under which ID it answers.
func (s *streamLayer) queryFormat(address raft.ServerAddress, timeout time.Duration) (formatInfo, error) {
	target := string(address)
	if s.dialAddr != nil {
		target = s.dialAddr(address)
	}
	c, err := net.DialTimeout("tcp", target, timeout)
	if err != nil {
		return formatInfo{}, err
	}
	defer c.Close()
	hs, err := s.clientHandshakeMagic(c, formatQueryMagic)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			err = fmt.Errorf("%w: %w", errNoFormatAnswer, err)
		}
		return formatInfo{}, fmt.Errorf("%w with %s: %w", errHandshake, target, err)
	}
	head := make([]byte, 3)
	if _, err := io.ReadFull(c, head); err != nil {
		return formatInfo{}, fmt.Errorf("format query to %s: %w (a build that predates format queries closes the connection)", target, err)
	}
	n := int(binary.BigEndian.Uint16(head[1:]))
	if n > maxMemberIDLen {
		return formatInfo{}, fmt.Errorf("format query to %s: member ID of %d bytes", target, n)
	}
	rest := make([]byte, n+macSize)
	if _, err := io.ReadFull(c, rest); err != nil {
		return formatInfo{}, fmt.Errorf("format query to %s: %w", target, err)
	}
	body := append(head, rest[:n]...)
	if !hmac.Equal(rest[n:], s.mac('F', hs.nd, append(append([]byte(nil), hs.nl...), body...))) {
		return formatInfo{}, fmt.Errorf("format query to %s: the answer is not authenticated", target)
	}
	return formatInfo{id: string(rest[:n]), reads: head[0]}, nil
}

// reads is the highest entry format this member's build reads (and
// announces).
func (n *Node) reads() uint8 {
	if n.cfg.readsFormat != 0 {
		return n.cfg.readsFormat
	}
	return store.BatchFormat
}

// announces is the format the member answers queries with: what it reads
// (tests may make a member announce more, as a build swapped after it
// answered would).
func (n *Node) announces() uint8 {
	if n.cfg.announceFormat != 0 {
		return n.cfg.announceFormat
	}
	return n.reads()
}

// agreeFormat raises the cluster's format while this member leads and
// serves, as soon as every member reads this build's (see above). It
// returns when the member stops.
func (n *Node) agreeFormat() {
	defer n.wg.Done()
	t := time.NewTicker(formatCheck)
	defer t.Stop()
	logged := ""
	for {
		srv, changed := n.State()
		if srv.Serving && n.st.writeFormat() < n.reads() {
			if err := n.raiseFormat(n.reads()); err != nil {
				if msg := err.Error(); msg != logged { // once per reason, not every check
					n.log.Info("log entries stay in the cluster's format", "format", n.st.writeFormat(), "reason", msg)
					logged = msg
				}
			} else {
				logged = ""
			}
		}
		select {
		case <-n.done:
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// errFormatNotAgreed says a member does not (or cannot be asked whether
// it does) read the format the leader would raise the cluster to.
var errFormatNotAgreed = errors.New("cluster: not every member reads the format")

// raiseFormat commits a format entry raising the cluster to format once
// every other server of the latest configuration answers that it reads
// it, and waits until this member applied it.
func (n *Node) raiseFormat(format uint8) error {
	n.formatMu.Lock()
	defer n.formatMu.Unlock()
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return err
	}
	for _, sv := range cf.Configuration().Servers {
		if sv.ID == raft.ServerID(n.cfg.ID) {
			continue
		}
		if err := n.checkMemberFormat(sv.ID, sv.Address, format); err != nil {
			return err
		}
	}
	if err := n.raft.Apply(store.FormatEntry(format), 10*time.Second).Error(); err != nil {
		return fmt.Errorf("cluster: commit the format entry: %w", err)
	}
	n.log.Info("every member reads the new format: log entries are written in it from now on", "format", format)
	return nil
}

// checkMemberFormat asks the member id at addr which format it reads and
// returns errFormatNotAgreed unless it reads format.
func (n *Node) checkMemberFormat(id raft.ServerID, addr raft.ServerAddress, format uint8) error {
	fi, err := n.stream.queryFormat(addr, handshakeTimeout)
	if err != nil {
		return fmt.Errorf("%w %d: member %s could not be asked: %w", errFormatNotAgreed, format, id, err)
	}
	return judgeFormat(fi, id, addr, format)
}

// judgeFormat says whether the answer fi, from addr, is member id
// reading format.
func judgeFormat(fi formatInfo, id raft.ServerID, addr raft.ServerAddress, format uint8) error {
	switch {
	case fi.id != string(id):
		return fmt.Errorf("%w %d: %s answered as member %q, not %s", errFormatNotAgreed, format, addr, fi.id, id)
	case fi.reads < format:
		return fmt.Errorf("%w %d: member %s reads format %d (an earlier build)", errFormatNotAgreed, format, id, fi.reads)
	}
	return nil
}

// ErrMemberFormat is returned by AddMember for a member that does not
// read the cluster's entry format (an earlier build).
var ErrMemberFormat = errors.New("cluster: the member does not read the cluster's log entry format")

// newMemberRetry is how often AddMember asks a new member that cannot be
// reached yet (it may be starting) which format it reads.
const newMemberRetry = 100 * time.Millisecond

// checkNewMember refuses to add a member that does not read the cluster's
// format; formatMu is held. A cluster still in format 1 takes any member.
// A member that cannot be asked yet (still starting) is asked again until
// ctx ends, as AddMember waits for a member to catch up; one that closes
// the connection at the question (an earlier build) is refused.
func (n *Node) checkNewMember(ctx context.Context, m Member) error {
	format := n.st.writeFormat()
	if format <= 1 {
		return nil
	}
	id, addr := raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddress)
	t := time.NewTicker(newMemberRetry)
	defer t.Stop()
	for {
		fi, err := n.stream.queryFormat(addr, handshakeTimeout)
		switch {
		case errors.Is(err, errNoFormatAnswer):
			return fmt.Errorf("%w: %s reads format 1 at most: %w", ErrMemberFormat, m.ID, err)
		case err == nil:
			if err := judgeFormat(fi, id, addr, format); err != nil {
				return fmt.Errorf("%w: %w", ErrMemberFormat, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s could not be asked which log entry format it reads: %w (last: %w)", m.ID, ctx.Err(), err)
		case <-n.done:
			return store.ErrClosed
		case <-t.C:
		}
	}
}

// formatState is the replicated store's part: the format it writes.
type formatState struct {
	format atomic.Uint32 // the cluster's format as this member applied it
}

// writeFormat is the format entries are encoded in: the cluster's, as
// this member applied it.
func (f *formatState) writeFormat() uint8 { return uint8(f.format.Load()) }

func (f *formatState) setFormat(v uint8) { f.format.Store(uint32(max(v, 1))) }
