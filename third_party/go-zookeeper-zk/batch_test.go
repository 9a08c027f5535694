package zk

import (
	"encoding/binary"
	"testing"
)

// TestEncodeRequestAtEveryOffset: a request encoded behind others either
// fits or reports a short buffer (never panics), whatever room is left,
// and at the start of the buffer it grows the buffer to fit.
func TestEncodeRequestAtEveryOffset(t *testing.T) {
	c := &Conn{buf: make([]byte, initialBufferSize), maxSendBuffer: 4 << 20}
	req := &request{xid: 7, opcode: opCreate, pkt: &CreateRequest{Path: "/a/b", Data: make([]byte, 100), Acl: WorldACL(PermAll)}}
	size, err := c.encodeRequest(req, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off := initialBufferSize - size - 8; off <= initialBufferSize; off++ {
		n, err := c.encodeRequest(req, off)
		switch {
		case err == ErrShortBuffer:
			if off+size <= len(c.buf) {
				t.Fatalf("offset %d: short buffer although %d bytes fit in %d", off, size, len(c.buf))
			}
		case err != nil:
			t.Fatalf("offset %d: %v", off, err)
		case n != size || int(binary.BigEndian.Uint32(c.buf[off:])) != size-4:
			t.Fatalf("offset %d: encoded %d bytes with length prefix %d, want %d", off, n, binary.BigEndian.Uint32(c.buf[off:]), size)
		}
	}
	big := &request{xid: 8, opcode: opCreate, pkt: &CreateRequest{Path: "/big", Data: make([]byte, 300<<10), Acl: WorldACL(PermAll)}}
	if _, err := c.encodeRequest(big, 0); err != nil {
		t.Fatalf("a request larger than the buffer at its start: %v", err)
	}
	if len(c.buf) < 300<<10 || len(c.buf) > 4<<20 {
		t.Fatalf("buffer grew to %d bytes", len(c.buf))
	}
	huge := &request{xid: 9, opcode: opCreate, pkt: &CreateRequest{Path: "/huge", Data: make([]byte, 5<<20), Acl: WorldACL(PermAll)}}
	if _, err := c.encodeRequest(huge, 0); err != ErrShortBuffer {
		t.Fatalf("a request over the limit: got %v, want ErrShortBuffer", err)
	}
}
