package vm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/imago-os/imago/internal/toolexec"
)

// The dictionary-attack parameters a new TPM gets. swtpm's own defaults
// (3 failures, then 1000 s per recovered try) lock a guest out after
// three power cuts: TPM 2.0 counts a shutdown that was not orderly as a
// failed authorization once a DA-protected object (such as a sealed disk
// key) was used since start-up. Hardware TPMs ship with larger limits;
// these are the ones Windows provisions: 32 failures, one forgiven every
// 10 minutes, and 10 minutes before the lockout authorization may be
// tried again.
const (
	tpmMaxAuthFail     = 32
	tpmRecoveryTime    = 600
	tpmLockoutRecovery = 600
)

// The TPM 2.0 constants used here (TPM 2.0 Part 2).
const (
	tpmSTNoSessions = 0x8001
	tpmSTSessions   = 0x8002

	tpmCCDictionaryAttackParameters = 0x0000013A
	tpmCCShutdown                   = 0x00000145
	tpmCCGetCapability              = 0x0000017A

	tpmRHLockout = 0x4000000A
	tpmRSPW      = 0x40000009

	tpmCapTPMProperties = 6
	tpmSUClear          = 0

	tpmPTLockoutCounter  = 0x20E
	tpmPTMaxAuthFail     = 0x20F
	tpmPTLockoutInterval = 0x210
	tpmPTLockoutRecovery = 0x211
)

// tpmLockoutState is the TPM's dictionary-attack state: the failure
// counter, the limit, and the recovery times in seconds.
type tpmLockoutState struct {
	Counter, MaxAuthFail, Interval, Recovery uint32
}

// tpmCommandTimeout bounds one command to the provisioning swtpm.
const tpmCommandTimeout = 10 * time.Second

// tpmStateExists reports whether stateDir holds a TPM's permanent state,
// which swtpm writes as tpm2-00.permall.
func tpmStateExists(stateDir string) bool {
	_, err := os.Stat(filepath.Join(stateDir, "tpm2-00.permall"))
	return err == nil
}

// provisionTPM creates a new TPM in the empty stateDir, as swtpm does on
// first use, and sets its dictionary-attack parameters (see tpmMaxAuthFail)
// with the lockout hierarchy's empty password, as a machine's owner would.
// runDir holds the temporary command socket.
func provisionTPM(ctx context.Context, stateDir, runDir string) error {
	return withTPM(ctx, stateDir, runDir, func(rw io.ReadWriter) error {
		params := make([]byte, 12)
		binary.BigEndian.PutUint32(params[0:], tpmMaxAuthFail)
		binary.BigEndian.PutUint32(params[4:], tpmRecoveryTime)
		binary.BigEndian.PutUint32(params[8:], tpmLockoutRecovery)
		if _, err := tpmCommand(rw, tpmCCDictionaryAttackParameters, []uint32{tpmRHLockout}, true, params); err != nil {
			return fmt.Errorf("setting the dictionary-attack parameters: %w", err)
		}
		return nil
	})
}

// readTPMLockoutState reads the dictionary-attack state of the TPM in
// stateDir.
func readTPMLockoutState(ctx context.Context, stateDir, runDir string) (tpmLockoutState, error) {
	var st tpmLockoutState
	err := withTPM(ctx, stateDir, runDir, func(rw io.ReadWriter) error {
		params := make([]byte, 12)
		binary.BigEndian.PutUint32(params[0:], tpmCapTPMProperties)
		binary.BigEndian.PutUint32(params[4:], tpmPTLockoutCounter)
		binary.BigEndian.PutUint32(params[8:], 4)
		resp, err := tpmCommand(rw, tpmCCGetCapability, nil, false, params)
		if err != nil {
			return fmt.Errorf("reading the TPM's properties: %w", err)
		}
		// moreData, capability, count, then (property, value) pairs.
		if len(resp) < 9 || binary.BigEndian.Uint32(resp[1:]) != tpmCapTPMProperties {
			return fmt.Errorf("reading the TPM's properties: malformed response % x", resp)
		}
		n := binary.BigEndian.Uint32(resp[5:])
		if uint64(len(resp)) < 9+8*uint64(n) {
			return fmt.Errorf("reading the TPM's properties: %d properties in %d bytes", n, len(resp))
		}
		for i := range n {
			p := resp[9+8*i:]
			v := binary.BigEndian.Uint32(p[4:])
			switch binary.BigEndian.Uint32(p) {
			case tpmPTLockoutCounter:
				st.Counter = v
			case tpmPTMaxAuthFail:
				st.MaxAuthFail = v
			case tpmPTLockoutInterval:
				st.Interval = v
			case tpmPTLockoutRecovery:
				st.Recovery = v
			}
		}
		return nil
	})
	return st, err
}

// withTPM runs swtpm on stateDir with a command socket, calls fn with the
// connection to it, shuts the TPM down in order and waits for swtpm to
// exit, so that its state is saved.
func withTPM(ctx context.Context, stateDir, runDir string, fn func(io.ReadWriter) error) error {
	path, err := toolexec.Find("swtpm")
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("vm: TPM state: %w", err)
	}
	sock := filepath.Join(runDir, "swtpm-setup.sock")
	_ = os.Remove(sock)
	defer os.Remove(sock)
	stderr := &lockedBuffer{}
	cmd := exec.Command(path, "socket", "--tpm2",
		"--tpmstate", "dir="+stateDir,
		"--server", "type=unixio,path="+sock,
		"--flags", "not-need-init,startup-clear",
		"--log", "level=1")
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vm: starting swtpm: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	conn, err := dialWhileRunning(ctx, sock, done)
	if err != nil {
		stop()
		return fmt.Errorf("vm: TPM state %s: %w: %s", stateDir, err, stderr.tail(10))
	}
	_ = conn.SetDeadline(time.Now().Add(tpmCommandTimeout))
	err = fn(conn)
	if err == nil {
		shutdown := make([]byte, 2)
		binary.BigEndian.PutUint16(shutdown, tpmSUClear)
		if _, serr := tpmCommand(conn, tpmCCShutdown, nil, false, shutdown); serr != nil {
			err = fmt.Errorf("shutting the TPM down: %w", serr)
		}
	}
	conn.Close()
	stop()
	if err != nil {
		return fmt.Errorf("vm: TPM state %s: %w", stateDir, err)
	}
	return nil
}

// dialWhileRunning connects to the unix socket sock once swtpm has created
// it, giving up when swtpm exits or swtpmStartTimeout passes.
func dialWhileRunning(ctx context.Context, sock string, exited <-chan struct{}) (net.Conn, error) {
	deadline := time.NewTimer(swtpmStartTimeout)
	defer deadline.Stop()
	for {
		if conn, err := net.Dial("unix", sock); err == nil {
			return conn, nil
		}
		select {
		case <-exited:
			return nil, errors.New("swtpm exited during start-up")
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("swtpm did not open %s within %s", sock, swtpmStartTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// tpmCommand sends one TPM 2.0 command with the given handles and
// parameters, authorized (when auth is set) by a password session with the
// empty password, and returns the response's parameter area.
func tpmCommand(rw io.ReadWriter, code uint32, handles []uint32, auth bool, params []byte) ([]byte, error) {
	var body bytes.Buffer
	for _, h := range handles {
		_ = binary.Write(&body, binary.BigEndian, h)
	}
	tag := uint16(tpmSTNoSessions)
	if auth {
		tag = tpmSTSessions
		// authorizationSize, then TPMS_AUTH_COMMAND: TPM_RS_PW, an empty
		// nonce, no attributes, an empty password.
		_ = binary.Write(&body, binary.BigEndian, uint32(9))
		_ = binary.Write(&body, binary.BigEndian, uint32(tpmRSPW))
		body.Write([]byte{0, 0, 0, 0, 0})
	}
	body.Write(params)
	cmd := make([]byte, 10, 10+body.Len())
	binary.BigEndian.PutUint16(cmd[0:], tag)
	binary.BigEndian.PutUint32(cmd[2:], uint32(10+body.Len()))
	binary.BigEndian.PutUint32(cmd[6:], code)
	cmd = append(cmd, body.Bytes()...)
	if _, err := rw.Write(cmd); err != nil {
		return nil, err
	}
	head := make([]byte, 10)
	if _, err := io.ReadFull(rw, head); err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	size := binary.BigEndian.Uint32(head[2:])
	if size < 10 || size > 4096 {
		return nil, fmt.Errorf("response of %d bytes", size)
	}
	resp := make([]byte, size-10)
	if _, err := io.ReadFull(rw, resp); err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if rc := binary.BigEndian.Uint32(head[6:]); rc != 0 {
		return nil, fmt.Errorf("TPM response code 0x%x", rc)
	}
	if binary.BigEndian.Uint16(head) == tpmSTSessions {
		// parameterSize precedes the parameters; the session area follows.
		if len(resp) < 4 || uint64(binary.BigEndian.Uint32(resp)) > uint64(len(resp)-4) {
			return nil, errors.New("malformed response parameter size")
		}
		return resp[4 : 4+binary.BigEndian.Uint32(resp)], nil
	}
	return resp, nil
}
