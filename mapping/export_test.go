package mapping

// FastPath reports whether records already in Amplitude's shape are
// passed through without re-encoding (the amplitude preset).
func (m *Mapper) FastPath() bool { return m.plan.fast }

// Reasons returns the failures per code (Error.Code; "filtered" included).
func (s *Summary) Reasons() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.reasons))
	for k, v := range s.reasons {
		out[k] = v
	}
	return out
}

// Samples returns the kept bad records.
func (s *Summary) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...)
}

// TimeRange returns the smallest and largest event time seen (ms).
func (s *Summary) TimeRange() (minMS, maxMS int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.minTime, s.maxTime
}

// Users returns the number of distinct user ids and whether it is exact.
func (s *Summary) Users() (n int64, exact bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users.count()
}

// Devices returns the number of distinct device ids and whether it is exact.
func (s *Summary) Devices() (n int64, exact bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices.count()
}
