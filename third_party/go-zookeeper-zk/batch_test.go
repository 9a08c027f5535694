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
	multi := &multiRequest{DoneHeader: multiHeader{-1, true, -1}}
	for _, op := range []any{
		&CreateRequest{Path: "/a/b", Data: make([]byte, 100), Acl: WorldACL(PermAll)},
		&SetDataRequest{Path: "/nodepool/nodes/0000000001", Data: make([]byte, 37), Version: 3},
		&pathWatchRequest{Path: "/nodepool/requests/100-0000000001", Watch: true},
		&addWatchRequest{Path: "/nodepool/nodes", Mode: 1},
	} {
		var opcode int32
		switch op.(type) {
		case *CreateRequest:
			opcode = opCreate
			multi.Ops = append(multi.Ops, multiRequestOp{multiHeader{opCreate, false, -1}, op})
		case *SetDataRequest:
			opcode = opSetData
			multi.Ops = append(multi.Ops, multiRequestOp{multiHeader{opSetData, false, -1}, op})
		case *pathWatchRequest:
			opcode = opGetData
		case *addWatchRequest:
			opcode = opAddWatch
		}
		encodeEverywhere(t, c, &request{xid: 7, opcode: opcode, pkt: op})
	}
	encodeEverywhere(t, c, &request{xid: 8, opcode: opMulti, pkt: multi})
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

// encodeEverywhere encodes req at every offset that leaves less room than
// it needs, up to the end of the buffer: it fits or reports a short
// buffer, and never panics.
func encodeEverywhere(t *testing.T, c *Conn, req *request) {
	t.Helper()
	size, err := c.encodeRequest(req, 0)
	if err != nil {
		t.Fatal(err)
	}
	for off := len(c.buf) - size - 8; off <= len(c.buf); off++ {
		n, err := c.encodeRequest(req, off)
		switch {
		case err == ErrShortBuffer:
			if off+size <= len(c.buf) {
				t.Fatalf("opcode %d at offset %d: short buffer although %d bytes fit in %d", req.opcode, off, size, len(c.buf))
			}
		case err != nil:
			t.Fatalf("opcode %d at offset %d: %v", req.opcode, off, err)
		case n != size || int(binary.BigEndian.Uint32(c.buf[off:])) != size-4:
			t.Fatalf("opcode %d at offset %d: encoded %d bytes with length prefix %d, want %d", req.opcode, off, n, binary.BigEndian.Uint32(c.buf[off:]), size)
		}
	}
}
