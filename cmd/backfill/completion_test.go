package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		var out, errb bytes.Buffer
		ctx := context.Background()
		if code := Main(ctx, ctx, []string{"completion", shell}, &out, &errb); code != ExitOK {
			t.Fatalf("%s: exit %d: %s", shell, code, errb.String())
		}
		s := out.String()
		for _, want := range []string{"--eps", "--checkpoint", "--batch-eps", "--daily-quota", "status"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s completion lacks %q", shell, want)
			}
		}
		if shell == "bash" {
			if _, err := exec.LookPath("bash"); err == nil {
				cmd := exec.Command("bash", "-n")
				cmd.Stdin = strings.NewReader(s)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("bash -n: %v\n%s", err, b)
				}
			}
		}
	}
	var errb bytes.Buffer
	ctx := context.Background()
	if code := Main(ctx, ctx, []string{"completion", "fish"}, &bytes.Buffer{}, &errb); code != ExitUsage {
		t.Fatalf("fish: exit %d", code)
	}
}
