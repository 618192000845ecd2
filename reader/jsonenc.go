package reader

import (
	"math"
	"strconv"
)

// appendFloat appends f as a JSON number the way encoding/json does. It
// reports false for NaN and infinities, which JSON cannot represent.
func appendFloat(b []byte, f float64, bits int) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		fmt = 'e'
	}
	return strconv.AppendFloat(b, f, fmt, -1, bits), true
}
