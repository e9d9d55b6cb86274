package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// StartSWTPM runs a TPM 2.0 simulator (swtpm) on loopback for the test, with
// a fresh state, and returns the TCTI string tpm2-tss uses to reach it. The
// simulator is killed when the test ends.
func StartSWTPM(t testing.TB) string {
	t.Helper()
	swtpm := RequireTool(t, "swtpm", "swtpm")
	state := t.TempDir()
	for attempt := 0; attempt < 5; attempt++ {
		port := freePortPair(t)
		cmd := exec.Command(swtpm, "socket", "--tpm2", "--tpmstate", "dir="+state,
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
			"--flags", "not-need-init,startup-clear")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("swtpm: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			select {
			case <-exited:
				t.Logf("swtpm on port %d exited: %s", port, stderr.String())
			default:
				if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
					c.Close()
					t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
					return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", port)
				}
				continue
			}
			break
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatal("swtpm did not start")
	return ""
}

// freePortPair returns a loopback TCP port p such that p and p+1 were free.
func freePortPair(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		l.Close()
		if err == nil {
			l2.Close()
			return port
		}
	}
	t.Fatal("no free port pair")
	return 0
}
