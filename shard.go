package backfill

import (
	"hash/fnv"
	"strconv"
)

// Key returns the id an event is partitioned by, in lanes and in shards:
// its device_id, else its user_id. Amplitude orders and throttles per
// device (and per user), so every event of one key must be sent by one
// sender in source order.
func (e *Event) Key() string {
	if e.DeviceID != "" {
		return e.DeviceID
	}
	return e.UserID
}

// ShardOf returns which of n shards owns key (0 <= result < n): FNV-1a
// (64 bits) of the key, modulo n. It depends on nothing but its arguments,
// so every process of a job, on any machine and of any version that keeps
// this function, agrees on it.
func ShardOf(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64() % uint64(n))
}

// ShardOfPosition returns which of n shards owns a record that has no key
// because it could not be decoded or mapped (it is dead-lettered, never
// sent): a hash of its object and record index, so exactly one shard
// dead-letters it.
func ShardOfPosition(p Position, n int) int {
	if n <= 1 {
		return 0
	}
	return ShardOf(p.Object+"#"+strconv.FormatInt(p.Record, 10), n)
}
