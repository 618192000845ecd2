package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// BackfillPackage is the import path of the command the end-to-end tests run.
const BackfillPackage = "github.com/backfillhq/backfill/cmd/backfill"

// BuildBackfill builds the backfill command as path (CGO off), with the go
// command of the toolchain running the tests (GOROOT/bin/go, else the one
// on PATH). The error holds the compiler's output.
func BuildBackfill(path string) error {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-o", path, BackfillPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}
