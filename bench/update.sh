#!/usr/bin/env bash
# Measures `imago update` throughput against the disk's write speed, in one
# run and on one file system, and prints the ratios. The payload is shaped
# like a zero-padded erofs image (half random bytes, half zeros) and
# published compressed with zstd, as `imago publish` does. Steps:
#
#   (a) dd         the decompressed payload written into a partition slot
#                  of a GPT image file with dd bs=1M conv=fsync: the disk's
#                  write speed, the baseline
#   (b) zstd|dd    zstd -d -c payload.zst | dd conv=fsync: what the
#                  reference tools do to decompress and write
#   (c) http       imago update from a url-file source on a loopback HTTP
#                  server (python3 -m http.server) with SHA256SUMS, fresh
#                  cache: download, SHA-256 check, decompress, write, fsync
#   (d) local      imago update from a regular-file source in a directory
#                  (no download, no cache)
#
# Every step writes into a freshly made sparse image file with two empty
# usr-x86-64 slots. MB/s counts decompressed bytes (1 MB = 10^6 bytes);
# "vs dd" is the step's throughput divided by that of (a).
#
#   bench/update.sh            run from anywhere; builds imago first
#   PAYLOAD_MIB=512            decompressed payload size in MiB
#   TMPDIR                     where the payload and the image go
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

mib=${PAYLOAD_MIB:-512}
[[ $mib =~ ^[1-9][0-9]*$ ]] || die "PAYLOAD_MIB must be a positive whole number of MiB, not '$mib'"
[ -d /usr/local/go/bin ] && PATH=$PATH:/usr/local/go/bin
missing=()
for tool in zstd sfdisk python3 go dd sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] ||
	die "missing tools: ${missing[*]} (Debian: apt-get install zstd fdisk python3; Go from https://go.dev/dl/)"

work=$(mktemp -d "${TMPDIR:-/tmp}/imago-bench-update.XXXXXX")
server=
cleanup() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
log "building imago"
CGO_ENABLED=0 go build -trimpath -o "$work/imago" ./cmd/imago
imago=$work/imago

bytes=$((mib << 20))
log "writing a $mib MiB payload (half random, half zeros) and compressing it with zstd"
{
	head -c $((bytes / 2)) /dev/urandom
	head -c $((bytes - bytes / 2)) /dev/zero
} >"$work/payload"
mkdir "$work/pub"
zstd -q -T0 -c "$work/payload" >"$work/pub/usr_1.raw.zst"
(cd "$work/pub" && sha256sum usr_1.raw.zst >SHA256SUMS)
want=$(sha256sum <"$work/payload" | cut -d' ' -f1)
disk=$work/disk.raw

# make_disk writes a fresh sparse GPT image with two _empty usr-x86-64
# slots that each hold the payload exactly.
make_disk() {
	rm -f "$disk"
	truncate -s $(((2 * mib + 2) << 20)) "$disk"
	sfdisk -q --no-reread --no-tell-kernel "$disk" >/dev/null <<-EOF
		label: gpt
		size=${mib}MiB, type=8484680c-9521-48c6-9c11-b0720656f69e, name="_empty"
		size=${mib}MiB, type=8484680c-9521-48c6-9c11-b0720656f69e, name="_empty"
	EOF
}

# slot_start LABEL prints the first MiB of the partition named LABEL.
slot_start() {
	sfdisk -d "$disk" | awk -v want="name=\"$1\"" '
		index($0, want) { sub(/.*start= */, ""); sub(/,.*/, ""); print $0 * 512 / 1048576; exit }'
}

# check_slot LABEL fails unless the partition named LABEL holds the payload.
check_slot() {
	local start got
	start=$(slot_start "$1")
	[ -n "$start" ] || die "no partition labelled $1 in $disk"
	got=$(dd if="$disk" bs=1M skip="$start" count="$mib" iflag=fullblock status=none | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || die "the partition labelled $1 does not hold the payload"
}

# timed NAME CMD...: runs CMD on a fresh disk and records its wall time.
names=() secs=()
timed() {
	local name=$1 t0 t1
	shift
	make_disk
	sync
	t0=$EPOCHREALTIME
	"$@"
	t1=$EPOCHREALTIME
	names+=("$name")
	secs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
}

make_disk
seek=$(slot_start _empty)
step_dd() {
	dd if="$work/payload" of="$disk" bs=1M seek="$seek" conv=fsync,notrunc status=none
}
step_zstd_dd() {
	zstd -q -d -c "$work/pub/usr_1.raw.zst" |
		dd of="$disk" bs=1M seek="$seek" iflag=fullblock conv=fsync,notrunc status=none
}
step_imago() {
	"$imago" update --definitions="$1" --image="$disk" update --verify=no --cache-dir="$work/cache" >"$work/imago.log" 2>&1 ||
		{ cat "$work/imago.log" >&2; die "imago update failed"; }
}

mkdir "$work/defs-http" "$work/defs-local"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$work/pub" "$port" >"$work/http.log" 2>&1 &
server=$!
for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "the HTTP server on port $port did not start"
target="[Target]
Type=partition
Path=auto
MatchPattern=usr_@v
MatchPartitionType=usr-x86-64"
printf '[Source]\nType=url-file\nPath=http://127.0.0.1:%s/\nMatchPattern=usr_@v.raw.zst\n%s\n' "$port" "$target" >"$work/defs-http/50-usr.conf"
printf '[Source]\nType=regular-file\nPath=%s\nMatchPattern=usr_@v.raw.zst\n%s\n' "$work/pub" "$target" >"$work/defs-local/50-usr.conf"

log "(a) dd conv=fsync"
timed "(a) dd" step_dd
check_slot _empty
log "(b) zstd -d | dd conv=fsync"
timed "(b) zstd|dd" step_zstd_dd
check_slot _empty
log "(c) imago update from http://127.0.0.1:$port/"
rm -rf "$work/cache"
timed "(c) imago http" step_imago "$work/defs-http"
check_slot usr_1
log "(d) imago update from $work/pub"
timed "(d) imago local" step_imago "$work/defs-local"
check_slot usr_1

printf '\npayload %d MiB decompressed, %d bytes as .zst; %s\n' "$mib" "$(stat -c %s "$work/pub/usr_1.raw.zst")" \
	"$(df -T "$work" | awk 'NR == 2 { print $2 " file system on " $1 }')"
printf '%-16s %9s %9s %7s\n' step seconds MB/s "vs dd"
for i in "${!names[@]}"; do
	awk -v n="${names[$i]}" -v s="${secs[$i]}" -v base="${secs[0]}" -v b="$bytes" \
		'BEGIN { printf "%-16s %9.3f %9.1f %6.2fx\n", n, s, b / s / 1e6, base / s }'
done
