package reader_test

import "testing"

func BenchmarkDecodeCSV(b *testing.B) { benchDecode(b, "csv") }
