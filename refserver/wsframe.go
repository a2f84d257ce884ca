package refserver

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"
)

// A WebSocket frame parser and writer for the readiness-driven transport (RFC 6455, server side):
// the poller hands each connection's bytes to its frameReader as they arrive, which keeps only an
// incomplete frame's bytes and a fragmented message's payload between reads — nothing while idle.

// WebSocket opcodes.
const (
	opContinuation = 0
	opText         = 1
	opBinary       = 2
	opClose        = 8
	opPing         = 9
	opPong         = 10
)

// errFrameTooLarge is a message over the read limit (answered with 1009).
var errFrameTooLarge = errors.New("websocket: read limit exceeded")

// frameProtocolError is a malformed frame (answered with 1002 and its text as the reason).
type frameProtocolError string

func (e frameProtocolError) Error() string { return "websocket: " + string(e) }

// frameEvent is one complete message or control frame.
type frameEvent struct {
	op      byte
	payload []byte // owned by the event (a copy)
}

// frameReader is one connection's parser state.
type frameReader struct {
	pending []byte // bytes of an incomplete frame
	msg     []byte // payload of the fragmented message being assembled
	msgOp   byte   // its opcode; 0 when none
	inMsg   bool
}

// feed parses data (and what was pending) and calls emit for every complete message and control
// frame, in order. It stops at the first error; the connection is then over.
func (r *frameReader) feed(data []byte, limit int64, emit func(frameEvent)) error {
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
func (r *frameReader) next(b []byte, limit int64, emit func(frameEvent)) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	fin := b[0]&0x80 != 0
	if b[0]&0x70 != 0 {
		return 0, frameProtocolError("unexpected reserved bits 0x" + strconv.FormatUint(uint64(b[0]&0x70), 16))
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
			return 0, errFrameTooLarge
		}
		n = int64(u)
		head = 10
	}
	switch op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !fin {
			return 0, frameProtocolError("control frame not final")
		}
		if n > 125 {
			return 0, frameProtocolError("control frame length > 125")
		}
	default:
		return 0, frameProtocolError("bad opcode " + strconv.Itoa(int(op)))
	}
	if !masked {
		return 0, frameProtocolError("bad MASK")
	}
	switch {
	case op == opContinuation && !r.inMsg:
		return 0, frameProtocolError("continuation after final message frame")
	case (op == opText || op == opBinary) && r.inMsg:
		return 0, frameProtocolError("message start before final message frame")
	}
	if op < opClose && limit > 0 && int64(len(r.msg))+n > limit {
		return 0, errFrameTooLarge
	}
	total := int64(head) + 4 + n
	if int64(len(b)) < total {
		return 0, nil
	}
	key := b[head : head+4]
	payload := b[head+4 : total]
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	switch {
	case op >= opClose:
		emit(frameEvent{op: op, payload: append([]byte(nil), payload...)})
	case fin && !r.inMsg:
		emit(frameEvent{op: op, payload: append([]byte(nil), payload...)})
	default:
		if !r.inMsg {
			r.inMsg, r.msgOp = true, op
		}
		r.msg = append(r.msg, payload...)
		if fin {
			emit(frameEvent{op: r.msgOp, payload: r.msg})
			r.msg, r.msgOp, r.inMsg = nil, 0, false
		}
	}
	return int(total), nil
}

// parseClose reads a close frame's payload: its code (1005 when empty) and reason, or a protocol
// error for a malformed one.
func parseClose(p []byte) (int, string, error) {
	switch {
	case len(p) == 0:
		return 1005, "", nil
	case len(p) == 1:
		return 0, "", frameProtocolError("invalid close frame")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return 0, "", frameProtocolError("invalid close code")
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", frameProtocolError("invalid utf8 payload in close frame")
	}
	return code, string(p[2:]), nil
}

// validCloseCode reports whether a peer may send code (RFC 6455 §7.4).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// appendFrameHeader appends the header of an unmasked server frame with an n-byte payload.
func appendFrameHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
	}
}
