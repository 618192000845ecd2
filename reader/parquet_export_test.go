package reader

import "github.com/apache/arrow-go/v18/parquet/file"

// MaxReadDictPage lets tests turn off reading small-dictionary columns as
// Arrow dictionaries (set it to -1).
var MaxReadDictPage = &maxReadDictPage

// SmallDictColumns is smallDictColumns from the first row group on.
func SmallDictColumns(pf *file.Reader) []int { return smallDictColumns(pf, 0) }
