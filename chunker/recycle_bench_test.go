package chunker_test

import "github.com/backfillhq/backfill/chunker"

func recycle(l *chunker.Lane, b chunker.Batch) { l.Recycle(b.Events) }
