package sysupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// snapshot reads every regular file below dir, to prove that a refused
// update changed nothing.
func snapshot(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range dirs {
		filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				b, _ := os.ReadFile(p)
				out[p] = string(b)
			} else {
				out[p] = fi.Mode().String()
			}
			return nil
		})
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("%d paths before, %d after", len(before), len(after))
	}
	for p, b := range before {
		if a, ok := after[p]; !ok || a != b {
			t.Errorf("%s changed", p)
		}
	}
}

// TestWrongHashHTTP serves a payload whose digest differs from SHA256SUMS
// over a loopback HTTP server: the update fails with ErrHashMismatch and
// the target keeps its installed version.
func TestWrongHashHTTP(t *testing.T) {
	w := t.TempDir()
	target, defs := filepath.Join(w, "target"), filepath.Join(w, "defs")
	writeFile(t, filepath.Join(target, "app_1.raw"), "one")
	files := map[string]string{"app_2.raw": "two, tampered"}
	good := sha256.Sum256([]byte("two"))
	sums := fmt.Sprintf("%x  app_2.raw\n", good)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "SHA256SUMS" {
			rw.Write([]byte(sums))
			return
		}
		c, ok := files[name]
		if !ok {
			http.NotFound(rw, r)
			return
		}
		http.ServeContent(rw, r, name, time.Time{}, strings.NewReader(c))
	}))
	defer srv.Close()
	writeFile(t, filepath.Join(defs, "10-app.conf"), "[Source]\nType=url-file\nPath="+srv.URL+"\nMatchPattern=app_@v.raw\n"+
		"[Target]\nType=regular-file\nPath="+target+"\nMatchPattern=app_@v.raw\n")
	ts, err := Load(Options{Definitions: defs, Specifiers: &testSpec})
	if err != nil {
		t.Fatal(err)
	}
	no := false
	env := Env{Verify: &no, CacheDir: filepath.Join(w, "cache"), HTTPClient: srv.Client()}
	plan := func() *Plan {
		p, err := BuildPlan(context.Background(), ts, PlanOptions{Env: env})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := snapshot(t, target)
	if _, err := plan().Update(context.Background(), "", UpdateOptions{}); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("tampered payload: %v", err)
	}
	sameSnapshot(t, before, snapshot(t, target))
	files["app_2.raw"] = "two"
	if _, err := plan().Update(context.Background(), "", UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "app_2.raw")); string(b) != "two" {
		t.Errorf("installed %q", b)
	}
}

// TestBadDefinition: an unknown key, in the file or in a drop-in, is
// reported with file, line and key.
func TestBadDefinition(t *testing.T) {
	defs := t.TempDir()
	base := "[Source]\nType=regular-file\nPath=/src\nMatchPattern=a_@v\n[Target]\nType=regular-file\nPath=/dst\n"
	writeFile(t, filepath.Join(defs, "10-a.transfer"), base+"Bogus=1\n")
	_, err := Load(Options{Definitions: defs, Specifiers: &testSpec})
	if err == nil || !strings.Contains(err.Error(), "10-a.transfer:8") || !strings.Contains(err.Error(), "Bogus") {
		t.Errorf("unknown key: %v", err)
	}
	writeFile(t, filepath.Join(defs, "10-a.transfer"), base)
	writeFile(t, filepath.Join(defs, "10-a.transfer.d/50-x.conf"), "[Target]\n\nInstancesMax=many\n")
	_, err = Load(Options{Definitions: defs, Specifiers: &testSpec})
	if err == nil || !strings.Contains(err.Error(), "50-x.conf:3") || !strings.Contains(err.Error(), "InstancesMax") {
		t.Errorf("bad drop-in: %v", err)
	}
	writeFile(t, filepath.Join(defs, "10-a.transfer.d/50-x.conf"), "[Target]\nInstancesMax=5\n")
	ts, err := Load(Options{Definitions: defs, Specifiers: &testSpec})
	if err != nil || ts[0].InstancesMax != 5 {
		t.Errorf("drop-in not applied: %v", err)
	}
}

// TestNoSlotLargeEnough: a payload larger than every _empty slot is
// refused before anything is written, naming the disk and the type.
func TestNoSlotLargeEnough(t *testing.T) {
	x := newT72(t, 512)
	x.publish("v1")
	big := append(x.read(filepath.Join(x.source, "part1-v1.raw")), 0)
	os.WriteFile(filepath.Join(x.source, "part1-v1.raw"), big, 0o644)
	before := x.read(x.disk)
	files := snapshot(t, x.xbootldr, x.system, x.dirs)
	_, err := x.plan(false).Update(context.Background(), "", UpdateOptions{})
	if err == nil || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), x.disk) || !strings.Contains(err.Error(), "root-x86-64") {
		t.Fatalf("oversized payload: %v", err)
	}
	if !bytes.Equal(before, x.read(x.disk)) {
		t.Error("the image changed")
	}
	sameSnapshot(t, files, snapshot(t, x.xbootldr, x.system, x.dirs))
	if _, err := x.plan(false).PlanUpdate(context.Background(), "", UpdateOptions{}); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("plan: %v", err)
	}
}

func TestVersionNotAvailable(t *testing.T) {
	x := newT72(t, 512)
	x.publish("v1")
	p := x.plan(false)
	for _, v := range []string{"v7", "bad/version"} {
		if _, err := p.Update(context.Background(), v, UpdateOptions{}); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
	x.update("v1")
	// Installed and complete: nothing to do.
	res, err := x.plan(false).Update(context.Background(), "v1", UpdateOptions{})
	if err != nil || !res.Plan.UpToDate || len(res.Installed) != 0 {
		t.Errorf("reinstall: %+v %v", res, err)
	}
	res, err = x.plan(false).Update(context.Background(), "", UpdateOptions{})
	if err != nil || !res.Plan.UpToDate {
		t.Errorf("no candidate: %+v %v", res, err)
	}
	// Offline plans cannot update.
	if _, err := x.plan(true).Update(context.Background(), "v1", UpdateOptions{}); err == nil {
		t.Error("offline plan updated")
	}
}

// TestLabelTooLong: a label over 36 UTF-16 code units fails before the
// vacuum or any write, so the image and the files stay byte-identical even
// though the update would first have evicted an old version.
func TestLabelTooLong(t *testing.T) {
	x := newT72(t, 512)
	for _, v := range []string{"v1", "v2"} {
		x.publish(v)
		x.update(v)
	}
	x.publish("v3.1234567890") // a-very-long-partition-name-v3.1234567890 is 40 long
	before := x.read(x.disk)
	files := snapshot(t, x.xbootldr, x.system, x.dirs)
	_, err := x.plan(false).Update(context.Background(), "", UpdateOptions{})
	if err == nil || !strings.Contains(err.Error(), "02-second") || !strings.Contains(err.Error(), "UTF-16") {
		t.Fatalf("long label: %v", err)
	}
	if !bytes.Equal(before, x.read(x.disk)) {
		t.Error("the image changed")
	}
	sameSnapshot(t, files, snapshot(t, x.xbootldr, x.system, x.dirs))
}
