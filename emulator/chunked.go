package emulator

// blockSize is the length of one block of a chunked list.
const blockSize = 4096

// chunked is an append-only list (with pops at the front) stored in fixed
// blocks, so growing it never copies what is already stored: the event log
// and the dedupe queue reach millions of entries.
type chunked[T any] struct {
	blocks [][]T
	head   int // popped entries in blocks[0]
	n      int
}

func (c *chunked[T]) push(v T) {
	if k := len(c.blocks); k == 0 || len(c.blocks[k-1]) == blockSize {
		c.blocks = append(c.blocks, make([]T, 0, blockSize))
	}
	k := len(c.blocks) - 1
	c.blocks[k] = append(c.blocks[k], v)
	c.n++
}

func (c *chunked[T]) len() int { return c.n }

// front returns the oldest entry; c must not be empty.
func (c *chunked[T]) front() T { return c.blocks[0][c.head] }

func (c *chunked[T]) pop() {
	var zero T
	c.blocks[0][c.head] = zero
	c.head++
	c.n--
	if c.head == len(c.blocks[0]) {
		c.blocks[0] = nil
		c.blocks = c.blocks[1:]
		c.head = 0
	}
}

// all copies the entries, oldest first.
func (c *chunked[T]) all() []T {
	out := make([]T, 0, c.n)
	for i, b := range c.blocks {
		if i == 0 {
			b = b[c.head:]
		}
		out = append(out, b...)
	}
	return out
}
