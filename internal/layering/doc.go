// Package layering holds the test that enforces which packages of the
// module may depend on which (see its layering_test.go and the table of
// "must not know about" in the style guide). It has no code of its own.
package layering
