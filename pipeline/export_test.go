package pipeline

// SetRefusedHold sets how many bytes of re-read source records are held
// before the object is checked and they are written; it returns the undo.
func SetRefusedHold(n int) func() {
	old := refusedHold
	refusedHold = n
	return func() { refusedHold = old }
}
