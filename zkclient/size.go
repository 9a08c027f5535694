package zkclient

import (
	"errors"
	"fmt"
)

// Size limits. ZooKeeper servers refuse a client packet larger than their
// jute.maxbuffer (1,048,575 bytes unless configured otherwise) by dropping
// the connection, which a client cannot tell from an outage. The client
// therefore refuses such a write itself, before sending it, with an error
// wrapping ErrTooLarge: a write that can never succeed is not retried as
// if ZooKeeper were down.
const (
	// DefaultMaxPacket is the largest write packet sent, in bytes: the
	// server's default jute.maxbuffer.
	DefaultMaxPacket = 1<<20 - 1
	// MaxRequestSize is the largest node request (its JSON) the launcher
	// serves; a larger one is declined by every pool, so it fails. The
	// launcher adds to a request when it stores it (state, declined_by,
	// nodes); the margin below DefaultMaxPacket leaves room for that.
	MaxRequestSize = DefaultMaxPacket - 64<<10
	// MaxCopiedField is the longest requestor or tenant_name served: the
	// launcher copies both into every node record of the request.
	MaxCopiedField = 16 << 10
	// packetOverhead bounds the bytes of a write packet besides the paths
	// and data (headers, ACL, versions, flags), per operation.
	packetOverhead = 128
)

// ErrTooLarge is wrapped by the error of a write larger than the packet
// limit; such a write is refused without being sent.
var ErrTooLarge = errors.New("zkclient: write too large for ZooKeeper")

// TooLargeError reports a write refused for its size.
type TooLargeError struct {
	Size  int // the packet's estimated size in bytes
	Limit int // the limit it exceeded
}

// Error returns a message naming the size and the limit.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%v (%d bytes, the limit is %d)", ErrTooLarge, e.Size, e.Limit)
}

// Unwrap returns ErrTooLarge.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// IsTooLarge reports whether err is a write refused for its size.
func IsTooLarge(err error) bool { return errors.Is(err, ErrTooLarge) }

// checkSize returns a *TooLargeError when a packet of the given size would
// exceed the client's limit.
func (c *Client) checkSize(size int) error {
	limit := c.maxPacket
	if limit <= 0 {
		limit = DefaultMaxPacket
	}
	if size > limit {
		return &TooLargeError{Size: size, Limit: limit}
	}
	return nil
}

// opSize estimates the bytes one operation adds to a packet.
func (c *Client) opSize(o Op) int {
	switch x := o.(type) {
	case CreateOp:
		return len(c.full(x.Path)) + len(x.Data) + packetOverhead
	case SetOp:
		return len(c.full(x.Path)) + len(x.Data) + packetOverhead
	case DeleteOp:
		return len(c.full(x.Path)) + packetOverhead
	case CheckOp:
		return len(c.full(x.Path)) + packetOverhead
	}
	return packetOverhead
}
