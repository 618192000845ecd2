package reader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/parquet"
	"gocloud.dev/blob"
)

// bucketStore reads one key of a bucket.
type bucketStore struct {
	b   *blob.Bucket
	key string
}

func (s *bucketStore) stream(ctx context.Context, off int64) (io.ReadCloser, error) {
	return s.b.NewRangeReader(ctx, s.key, off, -1, nil)
}

func (s *bucketStore) head(ctx context.Context, n int) ([]byte, error) {
	r, err := s.b.NewRangeReader(ctx, s.key, 0, int64(n), nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// blobReaderAt is an io.ReaderAt and io.Seeker over a bucket object. Reads
// are range reads of about the requested size (BufferedStreamEnabled keeps
// them near ParquetBufferSize), so a huge object is never fetched whole. It
// keeps the ctx of Open: it is an io adapter.
type blobReaderAt struct {
	ctx     context.Context
	b       *blob.Bucket
	key     string
	size    int64
	pos     int64
	streams []*rangeStream // least recently used first
	n       atomic.Int64
}

type rangeStream struct {
	r        *blob.Reader
	off, end int64
}

func (ra *blobReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= ra.size {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), ra.size-off))
	var s *rangeStream
	for i, c := range ra.streams {
		if c.off == off && c.end >= off+int64(want) {
			s = c
			ra.streams = append(slices.Delete(ra.streams, i, i+1), s)
			break
		}
	}
	if s == nil {
		length := min(max(int64(want), minRangeRead), ra.size-off)
		r, err := ra.b.NewRangeReader(ra.ctx, ra.key, off, length, nil)
		if err != nil {
			return 0, err
		}
		s = &rangeStream{r: r, off: off, end: off + length}
		ra.streams = append(ra.streams, s)
		if len(ra.streams) > maxStreams {
			ra.streams[0].r.Close()
			ra.streams = ra.streams[1:]
		}
	}
	n, err := io.ReadFull(s.r, p[:want])
	s.off += int64(n)
	ra.n.Add(int64(n))
	if err != nil {
		ra.drop(s)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("object shorter than listed (%d bytes): %w", ra.size, io.ErrUnexpectedEOF)
		}
		return n, err
	}
	if s.off == s.end {
		ra.drop(s)
	}
	if want < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (ra *blobReaderAt) drop(s *rangeStream) {
	s.r.Close()
	ra.streams = slices.DeleteFunc(ra.streams, func(c *rangeStream) bool { return c == s })
}

func (ra *blobReaderAt) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += ra.pos
	case io.SeekEnd:
		offset += ra.size
	default:
		return 0, errors.New("bad whence")
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	ra.pos = offset
	return offset, nil
}

func (ra *blobReaderAt) Close() error {
	for _, s := range ra.streams {
		s.r.Close()
	}
	ra.streams = nil
	return nil
}

// countingFile counts the bytes read from a local Parquet file. It has no
// Close, so file.Reader.Close leaves the file to the Decoder.
type countingFile struct {
	f *os.File
	n atomic.Int64 // read by Decoder.BytesRead from other goroutines
}

func (f *countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.f.ReadAt(p, off)
	f.n.Add(int64(n))
	return n, err
}

func (f *countingFile) Seek(off int64, whence int) (int64, error) { return f.f.Seek(off, whence) }

// noClose hides Close from file.Reader.Close, which would otherwise close
// the source the Decoder closes itself.
type noClose struct{ parquet.ReaderAtSeeker }
