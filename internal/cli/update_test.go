package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUpdateListAndCheckNew(t *testing.T) {
	w := t.TempDir()
	src, dst, defs := filepath.Join(w, "src"), filepath.Join(w, "dst"), filepath.Join(w, "defs")
	for _, d := range []string{src, dst, defs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	def := "[Source]\nType=regular-file\nPath=" + src + "\nMatchPattern=os_@v.raw\n[Target]\nType=regular-file\nPath=" + dst + "\nMatchPattern=os_@v+@l-@d.raw os_@v.raw\n"
	os.WriteFile(filepath.Join(defs, "10-os.conf"), []byte(def), 0o644)
	for _, n := range []string{"src/os_1.raw", "src/os_2.raw", "dst/os_1.raw"} {
		os.WriteFile(filepath.Join(w, n), []byte("x"), 0o644)
	}

	code, out, errOut := run(t, "update", "--definitions", defs, "check-new")
	if code != 0 || out != "2\n" {
		t.Fatalf("check-new: %d %q %q", code, out, errOut)
	}
	code, out, _ = run(t, "update", "--definitions", defs, "list")
	want := "VERSION  INSTALLED  AVAILABLE  ASSESSMENT\n2        no         yes        candidate\n1        yes        yes        current\n"
	if code != 0 || out != want {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = run(t, "update", "--definitions", defs, "--json", "list", "1")
	var v struct {
		Assessment string
		Instances  []struct{ Side, Name, Mode string }
	}
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.Assessment != "current" || len(v.Instances) != 2 || v.Instances[0].Name != "os_1.raw" || v.Instances[0].Side != "target" {
		t.Fatalf("list 1: %d %v %s", code, err, out)
	}

	os.WriteFile(filepath.Join(w, "dst/os_2+3-0.raw"), []byte("x"), 0o644)
	if code, out, _ := run(t, "update", "--definitions", defs, "check-new"); code != 1 || out != "" {
		t.Fatalf("check-new when up to date: %d %q", code, out)
	}
	if code, out, _ := run(t, "update", "--definitions", defs, "--offline", "--json", "list"); code != 0 || !strings.Contains(out, `"assessment": "current"`) || strings.Contains(out, `"available": true`) {
		t.Fatalf("offline list: %d %s", code, out)
	}
	os.WriteFile(filepath.Join(defs, "20-bad.conf"), []byte("[Target]\nBogus=1\n"), 0o644)
	code, _, errOut = run(t, "update", "--definitions", defs, "list")
	if code != 1 || !strings.Contains(errOut, "20-bad.conf:2: Bogus=: unknown key") {
		t.Fatalf("bad definition: %d %q", code, errOut)
	}
}
