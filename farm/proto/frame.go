package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// DefaultMaxFrame is a frame size limit for callers without a better one:
// a JobFinished carries every file a job produced (unikernel images of a
// few MiB, debug binaries of more), so it is generous.
const DefaultMaxFrame = 1 << 30

// ErrFrameTooLarge is wrapped by the error of ReadFrame for a frame whose
// header claims more than the limit, and of WriteFrame for a payload
// larger than it.
var ErrFrameTooLarge = errors.New("proto: frame too large")

// HeaderSize is the size of a frame header: the payload's length as an
// unsigned 64-bit big-endian integer (builder's read and write).
const HeaderSize = 8

// directRead is the payload size up to which ReadFrame allocates the whole
// payload at once; larger payloads grow with the bytes that actually arrive,
// so a peer that claims max bytes and sends none costs little.
const directRead = 64 << 10

// ReadFrame reads one frame and returns its payload. It returns io.EOF if r
// ends before the first byte of a frame, an error wrapping
// io.ErrUnexpectedEOF if it ends inside one, and an error wrapping
// ErrFrameTooLarge, before reading or allocating anything of the payload,
// if the header claims more than max bytes.
func ReadFrame(r io.Reader, max int64) ([]byte, error) {
	var hdr [HeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("proto: frame header truncated after %d of %d bytes: %w", n, HeaderSize, err)
		}
		return nil, fmt.Errorf("proto: reading frame header: %w", err)
	}
	n := binary.BigEndian.Uint64(hdr[:])
	if max < 0 {
		max = 0
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: header claims %d bytes, the limit is %d", ErrFrameTooLarge, n, max)
	}
	if n <= directRead {
		p := make([]byte, n)
		if k, err := io.ReadFull(r, p); err != nil {
			return nil, payloadErr(k, n, err)
		}
		return p, nil
	}
	var buf bytes.Buffer
	buf.Grow(directRead)
	k, err := io.CopyN(&buf, r, int64(n))
	if err != nil {
		return nil, payloadErr(int(k), n, err)
	}
	return buf.Bytes(), nil
}

func payloadErr(k int, n uint64, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("proto: frame of %d bytes truncated after %d: %w", n, k, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("proto: reading frame of %d bytes: %w", n, err)
}

// WriteFrame writes payload as one frame (header and payload in one
// vectored write where w supports it). It refuses a payload larger than
// max, which the peer would refuse.
func WriteFrame(w io.Writer, payload []byte, max int64) error {
	if int64(len(payload)) > max {
		return fmt.Errorf("%w: payload of %d bytes, the limit is %d", ErrFrameTooLarge, len(payload), max)
	}
	var hdr [HeaderSize]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(len(payload)))
	bufs := net.Buffers{hdr[:], payload}
	if _, err := bufs.WriteTo(w); err != nil {
		return fmt.Errorf("proto: writing frame: %w", err)
	}
	return nil
}

// ReadCmd reads one frame of at most max bytes and decodes its cmd.
func ReadCmd(r io.Reader, max int64) (Cmd, error) {
	p, err := ReadFrame(r, max)
	if err != nil {
		return nil, err
	}
	return Unmarshal(p)
}

// WriteCmd encodes c and writes it as one frame of at most max bytes.
func WriteCmd(w io.Writer, c Cmd, max int64) error {
	p, err := Marshal(c)
	if err != nil {
		return err
	}
	return WriteFrame(w, p, max)
}
