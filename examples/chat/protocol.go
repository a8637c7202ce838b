package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// protocolID is the chat's libp2p stream protocol. Each peer opens its own
// stream to its partner and sends hello and msg frames on it; the partner
// answers on the same stream with ack frames. So a pair of peers chatting both
// ways uses two streams of this one protocol.
const protocolID protocol.ID = "/resilience-chat/1.0.0"

// protocolVersion is sent in hello frames.
const protocolVersion = 1

const (
	// maxTextBytes bounds the text of one message (bytes of UTF-8).
	maxTextBytes = 16 << 10
	// maxFrameBytes bounds one encoded frame, newline included. JSON escaping
	// can at most sextuple the text (\u00XX), plus a little overhead.
	maxFrameBytes = 6*maxTextBytes + 1024
	// maxSessionBytes bounds a session id.
	maxSessionBytes = 64
)

// Frame types.
const (
	frameHello = "hello" // sender → receiver, first frame on a stream: session and version
	frameMsg   = "msg"   // sender → receiver: one chat message
	frameAck   = "ack"   // receiver → sender: every message of session up to seq arrived
)

// frame is one newline-terminated JSON object on a chat stream.
//
// Message identity: a message is (sender peer, session, seq). A session is a
// random id a peer picks at every start; seq counts that session's messages
// to one partner from 1 without gaps. Acks are cumulative. The sender keeps
// every unacknowledged message and resends all of them, in order, on each new
// stream; the receiver shows a message only if its seq is above the last one
// it showed for that session, so resends are dropped. A new session from a
// sender replaces the old one (the sender restarted), and the old session is
// never accepted again.
type frame struct {
	Type    string `json:"type"`
	Session string `json:"session,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Time    int64  `json:"time,omitempty"` // msg: when it was typed, Unix milliseconds, sender's clock
	Text    string `json:"text,omitempty"`
	Version int    `json:"version,omitempty"` // hello
}

var (
	errFrameTooLong = errors.New("frame too long")
	errBadFrame     = errors.New("bad frame")
)

// validate checks the fields a frame of a known type needs. Frames of unknown
// types are valid (and ignored by the receiver), so the protocol can grow.
func (f frame) validate() error {
	switch f.Type {
	case frameHello, frameMsg, frameAck:
	case "":
		return fmt.Errorf("%w: type is empty", errBadFrame)
	default:
		return nil
	}
	if f.Session == "" || len(f.Session) > maxSessionBytes {
		return fmt.Errorf("%w: %s: session must be 1..%d bytes, got %d", errBadFrame, f.Type, maxSessionBytes, len(f.Session))
	}
	switch f.Type {
	case frameHello:
		if f.Version < 1 {
			return fmt.Errorf("%w: hello: version must be >= 1, got %d", errBadFrame, f.Version)
		}
	case frameMsg, frameAck:
		if f.Seq == 0 {
			return fmt.Errorf("%w: %s: seq must be >= 1", errBadFrame, f.Type)
		}
		if len(f.Text) > maxTextBytes {
			return fmt.Errorf("%w: %s: text is %d bytes, max %d", errBadFrame, f.Type, len(f.Text), maxTextBytes)
		}
	}
	return nil
}

// writeFrame writes f as one line with a single Write call.
func writeFrame(w io.Writer, f frame) error {
	if err := f.validate(); err != nil {
		return err
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if len(b) > maxFrameBytes {
		return fmt.Errorf("%w: %d bytes, max %d", errFrameTooLong, len(b), maxFrameBytes)
	}
	_, err = w.Write(b)
	return err
}

// frameReader reads frames written by writeFrame. Not safe for concurrent use.
type frameReader struct {
	sc *bufio.Scanner
}

func newFrameReader(r io.Reader) *frameReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxFrameBytes)
	return &frameReader{sc: sc}
}

// next returns the next frame; io.EOF at a clean end of the stream, an error
// wrapping errFrameTooLong or errBadFrame for a frame that breaks the protocol
// (the stream is then unusable), or the stream's read error.
func (fr *frameReader) next() (frame, error) {
	for fr.sc.Scan() {
		line := fr.sc.Bytes()
		if len(line) == 0 {
			continue // tolerate blank lines
		}
		var f frame
		if err := json.Unmarshal(line, &f); err != nil {
			return frame{}, fmt.Errorf("%w: %v", errBadFrame, err)
		}
		if err := f.validate(); err != nil {
			return frame{}, err
		}
		return f, nil
	}
	err := fr.sc.Err()
	switch {
	case err == nil:
		return frame{}, io.EOF
	case errors.Is(err, bufio.ErrTooLong):
		return frame{}, fmt.Errorf("%w: more than %d bytes", errFrameTooLong, maxFrameBytes)
	default:
		return frame{}, err
	}
}
