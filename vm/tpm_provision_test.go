package vm

import (
	"context"
	"testing"

	"github.com/imago-os/imago/internal/toolexec"
)

// TestProvisionTPM: a new TPM state gets hardware-like dictionary-attack
// parameters, and an existing state keeps what it has.
func TestProvisionTPM(t *testing.T) {
	if _, err := toolexec.Find("swtpm"); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	state, run := t.TempDir(), t.TempDir()
	if tpmStateExists(state) {
		t.Fatal("an empty directory holds a TPM state")
	}
	before, err := readTPMLockoutState(ctx, t.TempDir(), run)
	if err != nil {
		t.Fatal(err)
	}
	if before.MaxAuthFail == tpmMaxAuthFail {
		t.Fatalf("swtpm's default limit is already %d; the test proves nothing", before.MaxAuthFail)
	}
	if err := provisionTPM(ctx, state, run); err != nil {
		t.Fatal(err)
	}
	if !tpmStateExists(state) {
		t.Fatal("no TPM state after provisioning")
	}
	got, err := readTPMLockoutState(ctx, state, run)
	if err != nil {
		t.Fatal(err)
	}
	want := tpmLockoutState{Counter: 0, MaxAuthFail: tpmMaxAuthFail, Interval: tpmRecoveryTime, Recovery: tpmLockoutRecovery}
	if got != want {
		t.Errorf("after provisioning: %+v, want %+v (swtpm's default: %+v)", got, want, before)
	}
}
