package azure

import (
	"crypto/rand"
	"math/big"
	"strings"
)

// generatePassword returns 64 random letters and digits with at least one
// lower-case letter, one upper-case letter and one digit.
func generatePassword() string {
	const lower, upper, digits = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"
	const chars = lower + upper + digits
	for {
		b := make([]byte, 64)
		for i := range b {
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
			b[i] = chars[n.Int64()]
		}
		s := string(b)
		if strings.ContainsAny(s, lower) && strings.ContainsAny(s, upper) && strings.ContainsAny(s, digits) {
			return s
		}
	}
}
