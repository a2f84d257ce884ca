// Package wsframe parses and writes WebSocket frames (RFC 6455) for readiness-driven I/O, on
// either side of a connection: a poller hands each connection's bytes to its Reader as they
// arrive, and the Reader keeps only an incomplete frame's bytes and a fragmented message's payload
// between reads — nothing while the connection is idle. Writers build whole frames with
// AppendHeader (a server's frames) and AppendClientFrame (a client's, masked).
//
// A Reader belongs to one connection and is not safe for concurrent use; the functions are.
package wsframe

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"
)

// WebSocket opcodes.
const (
	OpContinuation = 0
	OpText         = 1
	OpBinary       = 2
	OpClose        = 8
	OpPing         = 9
	OpPong         = 10
)

// ErrTooLarge is a message over the read limit (answered with 1009).
var ErrTooLarge = errors.New("websocket: read limit exceeded")

// ProtocolError is a malformed frame (answered with 1002 and its text as the reason).
type ProtocolError string

func (e ProtocolError) Error() string { return "websocket: " + string(e) }

// Event is one complete message or control frame.
type Event struct {
	Op      byte
	Payload []byte // owned by the event (a copy)
}

// Reader is one connection's parser state. FromClient says which side's frames it reads: a
// client's frames must be masked (a server reads them), a server's must not be (a client reads
// them).
type Reader struct {
	FromClient bool

	pending []byte // bytes of an incomplete frame
	msg     []byte // payload of the fragmented message being assembled
	msgOp   byte   // its opcode; 0 when none
	inMsg   bool
}

// Pending reports how many bytes the reader holds between reads (an incomplete frame and a
// fragmented message's payload so far).
func (r *Reader) Pending() int { return len(r.pending) + len(r.msg) }

// Feed parses data (and what was pending) and calls emit for every complete message and control
// frame, in order. limit bounds a message's payload (0: no bound). It stops at the first error;
// the connection is then over. Feed may modify data (a client's frames are unmasked in place).
func (r *Reader) Feed(data []byte, limit int64, emit func(Event)) error {
	buf := data
	if len(r.pending) > 0 {
		r.pending = append(r.pending, data...)
		buf = r.pending
	}
	for {
		n, err := r.next(buf, limit, emit)
		if err != nil {
			r.pending = nil
			return err
		}
		if n == 0 {
			break
		}
		buf = buf[n:]
	}
	switch {
	case len(buf) == 0:
		r.pending = nil
	case len(r.pending) > 0:
		// buf is a tail of pending: move it to the front.
		r.pending = append(r.pending[:0], buf...)
	default:
		r.pending = append([]byte(nil), buf...)
	}
	return nil
}

// next parses one frame at the start of b; it returns the bytes consumed, 0 when the frame is not
// complete yet.
func (r *Reader) next(b []byte, limit int64, emit func(Event)) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	fin := b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return 0, ProtocolError("unexpected reserved bits 0x" + strconv.FormatUint(uint64(b[0]&0x70), 16))
	}
	op := b[0] & 0x0f
	masked := b[1]&0x80 != 0
	n := int64(b[1] & 0x7f)
	head := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		n = int64(binary.BigEndian.Uint16(b[2:4]))
		head = 4
	case 127:
		if len(b) < 10 {
			return 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u > 1<<62 {
			return 0, ErrTooLarge
		}
		n = int64(u)
		head = 10
	}
	switch op {
	case OpContinuation, OpText, OpBinary:
	case OpClose, OpPing, OpPong:
		if !fin {
			return 0, ProtocolError("control frame not final")
		}
		if n > 125 {
			return 0, ProtocolError("control frame length > 125")
		}
	default:
		return 0, ProtocolError("bad opcode " + strconv.Itoa(int(op)))
	}
	if masked != r.FromClient {
		return 0, ProtocolError("bad MASK")
	}
	switch {
	case op == OpContinuation && !r.inMsg:
		return 0, ProtocolError("continuation after final message frame")
	case (op == OpText || op == OpBinary) && r.inMsg:
		return 0, ProtocolError("message start before final message frame")
	}
	if op < OpClose && limit > 0 && int64(len(r.msg))+n > limit {
		return 0, ErrTooLarge
	}
	keyLen := 0
	if masked {
		keyLen = 4
	}
	total := int64(head+keyLen) + n
	if int64(len(b)) < total {
		return 0, nil
	}
	payload := b[head+keyLen : total]
	if masked {
		key := b[head : head+4]
		for i := range payload {
			payload[i] ^= key[i&3]
		}
	}
	switch {
	case op >= OpClose:
		emit(Event{Op: op, Payload: append([]byte(nil), payload...)})
	case fin && !r.inMsg:
		emit(Event{Op: op, Payload: append([]byte(nil), payload...)})
	default:
		if !r.inMsg {
			r.inMsg, r.msgOp = true, op
		}
		r.msg = append(r.msg, payload...)
		if fin {
			emit(Event{Op: r.msgOp, Payload: r.msg})
			r.msg, r.msgOp, r.inMsg = nil, 0, false
		}
	}
	return int(total), nil
}

// ParseClose reads a close frame's payload: its code (1005 when empty) and reason, or a protocol
// error for a malformed one.
func ParseClose(p []byte) (int, string, error) {
	switch {
	case len(p) == 0:
		return 1005, "", nil
	case len(p) == 1:
		return 0, "", ProtocolError("invalid close frame")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !ValidCloseCode(code) {
		return 0, "", ProtocolError("invalid close code")
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", ProtocolError("invalid utf8 payload in close frame")
	}
	return code, string(p[2:]), nil
}

// ValidCloseCode reports whether a peer may send code (RFC 6455 §7.4 and the registry's 1012
// service restart and 1013 try again later; the same set gorilla/websocket accepts).
func ValidCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1013:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ClosePayload is the payload of a close frame with code and reason (empty for code 1005, which
// is never sent). The reason is cut to fit a control frame.
func ClosePayload(code int, reason string) []byte {
	if code == 1005 {
		return nil
	}
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// appendLength appends the second byte (with the mask bit) and the extended length of a frame.
func appendLength(dst []byte, mask byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, mask|byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, mask|126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, mask|127), uint64(n))
	}
}

// AppendHeader appends the header of a final, unmasked (server) frame with an n-byte payload.
func AppendHeader(dst []byte, op byte, n int) []byte {
	return appendLength(append(dst, 0x80|op), 0, n)
}

// AppendClientFrame appends a final client frame: header, masking key and the payload masked with
// key (RFC 6455 §5.3: the key must be unpredictable to the peer's intermediaries).
func AppendClientFrame(dst []byte, op byte, payload []byte, key [4]byte) []byte {
	dst = appendLength(append(dst, 0x80|op), 0x80, len(payload))
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	masked := dst[start:]
	for i := range masked {
		masked[i] ^= key[i&3]
	}
	return dst
}
