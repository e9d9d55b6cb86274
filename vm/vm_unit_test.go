package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestQemuArgsX86SecureBootTPM(t *testing.T) {
	c := &Config{CPUs: 2, Memory: 1<<30 + 1, NoReboot: true, Kernel: "/k", Initrd: "/i", Append: "console=ttyS0", ExtraArgs: []string{"-S"}}
	p := &plan{
		arch: arches[ArchX86_64], accel: AccelTCG,
		code: "/fw/CODE.fd", vars: "/state/vars,1.fd", secureBoot: true,
		disk: "/img/disk.raw", snapshot: true,
		tpmSocket: "/run/swtpm.sock", qmpSocket: "/run/qmp.sock", consoleLog: "/state/console.log",
		serialSock: "/run/serial.sock",
	}
	want := []string{
		"-machine", "q35,hpet=off,smm=on",
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max",
		"-smp", "2", "-m", "1025M",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd",
		"-drive", "if=pflash,format=raw,unit=1,file=/state/vars,,1.fd",
		"-drive", "if=none,id=disk0,format=raw,discard=unmap,file=/img/disk.raw,snapshot=on",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=1",
		"-device", "virtio-rng-pci",
		"-chardev", "socket,id=chrtpm,path=/run/swtpm.sock",
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", "tpm-tis,tpmdev=tpm0",
		"-chardev", "socket,id=ser0,server=off,path=/run/serial.sock",
		"-serial", "chardev:ser0",
		"-qmp", "unix:/run/qmp.sock,server=on,wait=off",
		"-no-reboot",
		"-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0",
		"-S",
	}
	if got := qemuArgs(c, p); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("args:\n got %q\nwant %q", got, want)
	}
}

func TestQemuArgsKVMInteractiveNoTPM(t *testing.T) {
	c := &Config{Interactive: true}
	p := &plan{
		arch: arches[ArchX86_64], accel: AccelKVM, code: "/c", vars: "/v", disk: "/d",
		qmpSocket: "/q", consoleLog: "/l",
	}
	want := []string{
		"-machine", "q35,hpet=off",
		"-accel", "kvm", "-cpu", "host",
		"-smp", "2", "-m", "1024M",
		"-nodefaults", "-no-user-config", "-display", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/c",
		"-drive", "if=pflash,format=raw,unit=1,file=/v",
		"-drive", "if=none,id=disk0,format=raw,discard=unmap,file=/d",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=1",
		"-device", "virtio-rng-pci",
		"-chardev", "stdio,id=ser0,mux=on,signal=off,logfile=/l",
		"-serial", "chardev:ser0",
		"-mon", "chardev=ser0,mode=readline",
		"-qmp", "unix:/q,server=on,wait=off",
	}
	if got := qemuArgs(c, p); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("args:\n got %q\nwant %q", got, want)
	}
}

func TestQemuArgsARM64(t *testing.T) {
	p := &plan{
		arch: arches[ArchARM64], accel: AccelTCG, code: "/c", vars: "/v", disk: "/d", secureBoot: true,
		tpmSocket: "/t", qmpSocket: "/q", consoleLog: "/l",
	}
	got := strings.Join(qemuArgs(&Config{}, p), " ")
	for _, want := range []string{"-machine virt,gic-version=max -accel", "-device tpm-tis-device,tpmdev=tpm0"} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "smm") || strings.Contains(got, "cfi.pflash01") {
		t.Errorf("arm64 args %q have x86 SMM settings", got)
	}
}

func TestVarsStateName(t *testing.T) {
	for _, c := range []struct {
		sb   bool
		keys string
		want string
	}{
		{false, KeysNone, "efivars.fd"},
		{false, KeysSnakeoil, "efivars.fd"},
		{true, KeysNone, "efivars-secureboot.fd"},
		{true, KeysSnakeoil, "efivars-snakeoil.fd"},
		{true, KeysMicrosoft, "efivars-microsoft.fd"},
	} {
		if got := varsStateName(c.sb, c.keys); got != c.want {
			t.Errorf("varsStateName(%v, %q) = %q, want %q", c.sb, c.keys, got, c.want)
		}
	}
}

func TestFirmwareFiles(t *testing.T) {
	dir := t.TempDir()
	a := &archInfo{
		firmwareDir: dir, firmwarePackage: "ovmf",
		code: []string{"CODE.fd"}, secureCode: []string{"CODE.new.fd", "CODE.sb.fd"},
		vars: map[string]string{KeysNone: "VARS.fd", KeysSnakeoil: "VARS.snakeoil.fd"},
	}
	if _, _, err := firmwareFiles(a, false, KeysNone); err == nil || !strings.Contains(err.Error(), "install the Debian package ovmf") {
		t.Fatalf("missing firmware: %v", err)
	}
	for _, f := range []string{"CODE.fd", "CODE.sb.fd", "VARS.fd"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, vars, err := firmwareFiles(a, true, KeysNone)
	if err != nil || code != filepath.Join(dir, "CODE.sb.fd") || vars != filepath.Join(dir, "VARS.fd") {
		t.Errorf("secure boot firmware = %q, %q, %v", code, vars, err)
	}
	if _, _, err := firmwareFiles(a, true, KeysSnakeoil); err == nil || !strings.Contains(err.Error(), "VARS.snakeoil.fd") {
		t.Errorf("missing snakeoil store: %v", err)
	}
	if _, _, err := firmwareFiles(a, true, "bogus"); err == nil {
		t.Error("unknown key store accepted")
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Start(ctx, Config{}); err == nil {
		t.Error("no image: no error")
	}
	if _, err := Start(ctx, Config{Image: filepath.Join(t.TempDir(), "missing.raw")}); err == nil || !strings.Contains(err.Error(), "missing.raw") {
		t.Errorf("missing image: %v", err)
	}
	img := filepath.Join(t.TempDir(), "img.raw")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, Config{Image: img, Arch: "sparc"}); err == nil || !strings.Contains(err.Error(), "sparc") {
		t.Errorf("unknown arch: %v", err)
	}
	if _, err := os.Stat(img + StateSuffix); err == nil {
		t.Error("a failed start left a state directory")
	}
}

func TestKVMUsable(t *testing.T) {
	// Whatever the answer, it must come with a reason and never panic.
	err := KVMUsable(HostArch())
	t.Logf("KVM for %s: %v", HostArch(), err)
	if err := KVMUsable("sparc"); err == nil {
		t.Error("KVM usable for an unknown architecture")
	}
}

// appendFile appends s to the file at path, as qemu does with the console.
func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestConsoleWaitFor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	var live bytes.Buffer
	c, err := newConsole(path, &syncWriter{w: &live})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.followFile(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	appendFile(t, path, "boot\r\nIMAGO-VM-TEST: boots=0\r\nIMAGO-VM-TEST: bo")
	re := regexp.MustCompile(`IMAGO-VM-TEST: boots=(\d+)`)
	m, err := c.waitFor(ctx, re, 5*time.Second, false)
	if err != nil || m[1] != "0" {
		t.Fatalf("first wait: %q, %v", m, err)
	}
	// The unterminated line is not matched until it ends.
	go func() {
		time.Sleep(200 * time.Millisecond)
		appendFile(t, path, "ots=1\n")
	}()
	m, err = c.waitFor(ctx, re, 5*time.Second, false)
	if err != nil || m[1] != "1" {
		t.Fatalf("second wait: %q, %v", m, err)
	}
	// Nothing new: the wait times out with the console's tail.
	_, err = c.waitFor(ctx, re, 300*time.Millisecond, false)
	var we *WaitError
	if !errors.As(err, &we) || we.Exited || !strings.Contains(we.Tail, "boots=1") || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("timeout: %v", err)
	}
	// A cancelled context ends the wait with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.waitFor(cctx, re, 0, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	// At the end the last line counts even without a newline.
	appendFile(t, path, "IMAGO-VM-TEST: boots=2")
	c.stop()
	if m, err := c.waitFor(ctx, re, time.Second, false); err != nil || m[1] != "2" {
		t.Fatalf("final line: %q, %v", m, err)
	}
	_, err = c.waitFor(ctx, re, time.Second, false)
	if !errors.As(err, &we) || !we.Exited || !strings.Contains(err.Error(), "stopped first") {
		t.Fatalf("after exit: %v", err)
	}
	if got := live.String(); got != "boot\r\nIMAGO-VM-TEST: boots=0\r\nIMAGO-VM-TEST: boots=1\nIMAGO-VM-TEST: boots=2" {
		t.Errorf("live copy = %q", got)
	}
	if got := c.tail(2); got != "IMAGO-VM-TEST: boots=1\nIMAGO-VM-TEST: boots=2" {
		t.Errorf("tail = %q", got)
	}
}

func TestConsoleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	c, err := newConsole(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.write([]byte("x")); err == nil {
		t.Error("input accepted before qemu connected")
	}
	guest, host := net.Pipe()
	if err := c.serve(host); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	go guest.Write([]byte("login: "))
	if _, err := c.waitFor(ctx, regexp.MustCompile(`^login: $`), 300*time.Millisecond, false); err == nil {
		t.Fatal("an unterminated line matched while the machine runs")
	}
	// A prompt that arrives in pieces still matches as a whole.
	done := make(chan error, 1)
	go func() {
		_, err := c.waitFor(ctx, regexp.MustCompile(`^login: Password: $`), 5*time.Second, true)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	go guest.Write([]byte("Pass"))
	time.Sleep(50 * time.Millisecond)
	go guest.Write([]byte("word: "))
	if err := <-done; err != nil {
		t.Fatalf("prompt in two pieces: %v", err)
	}
	typed := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := guest.Read(b)
		typed <- string(b[:n])
	}()
	if err := c.write([]byte("root\n")); err != nil {
		t.Fatal(err)
	}
	if got := <-typed; got != "root\n" {
		t.Errorf("guest read %q", got)
	}
	guest.Write([]byte("root\r\nWelcome\r\n"))
	guest.Close()
	c.stop()
	if m, err := c.waitFor(ctx, regexp.MustCompile(`^Welcome$`), time.Second, false); err != nil || m[0] != "Welcome" {
		t.Fatalf("after the end: %q, %v", m, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "login: Password: root\r\nWelcome\r\n" {
		t.Errorf("log file = %q", b)
	}
	if err := c.write([]byte("x")); err == nil {
		t.Error("input accepted after the machine stopped")
	}
}

func TestConsoleStopBeforeStart(t *testing.T) {
	c, err := newConsole(filepath.Join(t.TempDir(), "console.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.stop()
	if err := c.followFile(); err == nil {
		t.Error("followFile after stop succeeded")
	}
	var we *WaitError
	if _, err := c.waitFor(context.Background(), regexp.MustCompile(`x`), time.Second, false); !errors.As(err, &we) || !we.Exited {
		t.Errorf("waitFor after stop = %v", err)
	}
}

type syncWriter struct {
	w *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

func TestMatchLines(t *testing.T) {
	re := regexp.MustCompile(`^b(\d)$`)
	for _, c := range []struct {
		in          string
		final       bool
		want        string
		next, where int
	}{
		{"a\nb1\nc\n", false, "1", 5, 2},
		{"a\nb1", false, "", 0, 2},
		{"a\nb1", true, "1", 4, 2},
		{"a\r\nb2\r\n", false, "2", 7, 3},
		{"", true, "", 0, 0},
		{"a\nc\n", false, "", 0, 4},
		// A prompt that came in part: the partial line stays unscanned.
		{"a\nc\nb", true, "", 0, 4},
	} {
		m, next, where := matchLines([]byte(c.in), re, c.final)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != c.want || next != c.next || where != c.where {
			t.Errorf("matchLines(%q, %v) = %q, %d, %d; want %q, %d, %d", c.in, c.final, got, next, where, c.want, c.next, c.where)
		}
	}
}

// fakeQEMU answers QMP on one end of a pipe: a greeting, an event before
// every reply, and an error for unknown commands.
func fakeQEMU(t *testing.T, conn net.Conn, commands chan<- string) {
	t.Helper()
	defer conn.Close()
	w := bufio.NewWriter(conn)
	send := func(s string) {
		w.WriteString(s + "\r\n")
		w.Flush()
	}
	send(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`)
	dec := json.NewDecoder(conn)
	for {
		var req struct {
			Execute string `json:"execute"`
		}
		if err := dec.Decode(&req); err != nil {
			return
		}
		commands <- req.Execute
		send(`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESET", "data": {"guest": false}}`)
		switch req.Execute {
		case "qmp_capabilities", "system_reset":
			send(`{"return": {}}`)
		case "query-status":
			send(`{"return": {"status": "running", "running": true}}`)
		default:
			send(`{"error": {"class": "CommandNotFound", "desc": "The command ` + req.Execute + ` has not been found"}}`)
		}
	}
}

func TestQMPClient(t *testing.T) {
	client, server := net.Pipe()
	commands := make(chan string, 10)
	go fakeQEMU(t, server, commands)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := newQMPClient(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if got := <-commands; got != "qmp_capabilities" {
		t.Fatalf("first command %q", got)
	}
	ret, err := c.execute(ctx, "query-status", nil)
	if err != nil || !strings.Contains(string(ret), `"running"`) {
		t.Fatalf("query-status: %s, %v", ret, err)
	}
	if _, err := c.execute(ctx, "system_reset", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.execute(ctx, "bogus", nil)
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Fatalf("bogus: %v", err)
	}
}

func TestDialQMPGivesUpWhenQemuExits(t *testing.T) {
	exited := make(chan struct{})
	close(exited)
	_, err := dialQMP(context.Background(), filepath.Join(t.TempDir(), "none.sock"), exited)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseQMPMessage(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind qmpKind
	}{
		{`{"QMP": {"version": {}}}`, qmpGreeting},
		{`{"return": {}}`, qmpReturn},
		{`{"return": [1, 2], "id": 3}`, qmpReturn},
		{`{"error": {"class": "GenericError", "desc": "x"}}`, qmpErrorReply},
		{`{"event": "SHUTDOWN", "data": {}}`, qmpEvent},
	} {
		m, err := parseQMPMessage([]byte(c.in))
		if err != nil || m.Kind != c.kind {
			t.Errorf("parse %s = %+v, %v; want kind %d", c.in, m, err, c.kind)
		}
	}
	for _, bad := range []string{``, `[]`, `{}`, `{"foo": 1}`, `{"return": {}} {}`, `{"return": `, `"x"`} {
		if _, err := parseQMPMessage([]byte(bad)); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
}

func FuzzQMPMessage(f *testing.F) {
	for _, s := range []string{
		`{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`,
		`{"return": {}}`, `{"return": {"status": "running"}}`,
		`{"error": {"class": "GenericError", "desc": "x"}}`,
		`{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true}}`,
		`{"error": null, "return": 1}`, `{"event": null}`, `{}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseQMPMessage(b)
		if err != nil {
			if m.Kind != 0 {
				t.Fatalf("error %v with kind %d", err, m.Kind)
			}
			return
		}
		// A classified message is valid JSON and carries what its kind
		// promises.
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		switch m.Kind {
		case qmpReturn:
			if m.Return == nil {
				t.Fatal("return without value")
			}
		case qmpErrorReply:
			if m.Err == nil {
				t.Fatal("error reply without error")
			}
		case qmpEvent, qmpGreeting:
		default:
			t.Fatalf("kind %d", m.Kind)
		}
		// Re-encoding the decoded reply decodes to the same kind.
		if m.Kind == qmpReturn {
			again, err := parseQMPMessage([]byte(`{"return": ` + string(m.Return) + `}`))
			if err != nil || again.Kind != qmpReturn {
				t.Fatalf("round trip of %s: %v", m.Return, err)
			}
		}
	})
}

func FuzzConsoleLines(f *testing.F) {
	f.Add([]byte("a\nIMAGO-VM-TEST: boots=1\r\n"), true)
	f.Add([]byte("IMAGO-VM-TEST: boots="), false)
	f.Add([]byte("\n\n\r\r"), true)
	re := regexp.MustCompile(`IMAGO-VM-TEST: boots=(\d+)`)
	f.Fuzz(func(t *testing.T, b []byte, final bool) {
		m, next, scanned := matchLines(b, re, final)
		if scanned < 0 || scanned > len(b) || next < 0 || next > len(b) {
			t.Fatalf("offsets %d %d out of range %d", next, scanned, len(b))
		}
		if m == nil {
			return
		}
		if next <= scanned {
			t.Fatalf("match ends at %d, before its start %d", next, scanned)
		}
		line := strings.TrimRight(strings.TrimSuffix(string(b[scanned:next]), "\n"), "\r")
		if strings.Contains(line, "\n") || !re.MatchString(line) {
			t.Fatalf("matched line %q", line)
		}
		// No earlier complete line matches.
		if m2, _, _ := matchLines(b[:scanned], re, false); m2 != nil {
			t.Fatalf("an earlier line matches too")
		}
	})
}

func TestWorkingCopy(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img.raw")
	// Data at the start and at 3 MiB, a hole in between.
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("middle"), 3<<20)
	f.Truncate(4 << 20)
	f.Close()
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o700)
	nop := func(string) {}

	if _, err := workingCopy(img, state, 1<<20, nop); err == nil {
		t.Fatal("a copy smaller than the image was made")
	}
	cp, err := workingCopy(img, state, 8<<20, nop)
	if err != nil {
		t.Fatal(err)
	}
	checkCopy := func(size int64, want map[int64]string) {
		t.Helper()
		b, err := os.ReadFile(cp)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != size {
			t.Fatalf("copy is %d bytes, want %d", len(b), size)
		}
		for off, s := range want {
			if got := string(b[off : off+int64(len(s))]); got != s {
				t.Errorf("at %d: %q, want %q", off, got, s)
			}
		}
	}
	checkCopy(8<<20, map[int64]string{0: "start", 3 << 20: "middle"})
	// The guest writes; a second start with the same image keeps it, and a
	// bigger size grows it.
	os.WriteFile(cp+".x", nil, 0o644)
	g, _ := os.OpenFile(cp, os.O_WRONLY, 0)
	g.WriteAt([]byte("guest"), 5<<20)
	g.Close()
	if cp2, err := workingCopy(img, state, 16<<20, nop); err != nil || cp2 != cp {
		t.Fatal(cp2, err)
	}
	checkCopy(16<<20, map[int64]string{0: "start", 5 << 20: "guest"})
	// A smaller size makes a new copy.
	if _, err := workingCopy(img, state, 8<<20, nop); err != nil {
		t.Fatal(err)
	}
	checkCopy(8<<20, map[int64]string{5 << 20: "\x00\x00\x00\x00\x00"})
	// So does a changed image.
	g, _ = os.OpenFile(cp, os.O_WRONLY, 0)
	g.WriteAt([]byte("guest"), 5<<20)
	g.Close()
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(img, []byte("rebuilt"), 0o644)
	if _, err := workingCopy(img, state, 8<<20, nop); err != nil {
		t.Fatal(err)
	}
	checkCopy(8<<20, map[int64]string{0: "rebuilt", 5 << 20: "\x00\x00\x00\x00\x00"})
	// The image itself was never written by the copies.
	if b, _ := os.ReadFile(img); string(b) != "rebuilt" {
		t.Errorf("image changed: %q", b)
	}
}

func TestCopySparseKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, _ := os.Create(src)
	f.WriteAt([]byte{1}, 64<<20)
	f.Close()
	dst := filepath.Join(dir, "dst")
	if err := copySparse(dst, src); err != nil {
		t.Fatal(err)
	}
	var st, sd syscall.Stat_t
	if err := syscall.Stat(src, &st); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(dst, &sd); err != nil {
		t.Fatal(err)
	}
	if sd.Size != st.Size {
		t.Fatalf("size %d, want %d", sd.Size, st.Size)
	}
	if sd.Blocks > st.Blocks+16 {
		t.Errorf("copy uses %d blocks, the sparse source %d", sd.Blocks, st.Blocks)
	}
}
