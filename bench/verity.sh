#!/usr/bin/env bash
# Times `imago verity format` against `veritysetup format` on the same data
# file, checks that both give the same root hash and the same hash file, and
# prints how many times faster imago is (veritysetup time / imago time).
#
#   bench/verity.sh [SIZE]     SIZE of the random data file, as head -c takes
#                              it (default 1G; e.g. 256M, 4G)
#   RUNS=3                     runs of each tool; the best and the median count
#   CACHE=warm|cold            warm (default): the data file is read once
#                              before the runs, so both tools read it from the
#                              page cache and the figure compares hashing and
#                              I/O handling, not the disk. cold: the page cache
#                              is dropped before every run (needs root).
#   TMPDIR                     where the data and hash files go
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

size=${1:-1G}
runs=${RUNS:-3}
cache=${CACHE:-warm}
case "$cache" in warm | cold) ;; *) die "CACHE must be warm or cold" ;; esac

ensure_go
ensure_packages cryptsetup-bin coreutils
veritysetup=$(command -v veritysetup || echo /usr/sbin/veritysetup)
[ -x "$veritysetup" ] || die "veritysetup not found"
log "building imago"
build_imago
imago=$PWD/bin/imago

work=$(mktemp -d "${TMPDIR:-/tmp}/imago-bench-verity.XXXXXX")
trap 'rm -rf "$work"' EXIT
data=$work/data
log "writing $size of random data to $data"
head -c "$size" /dev/urandom >"$data"
bytes=$(stat -c %s "$data")

salt=5f0c6e2d9b8a7f6e5d4c3b2a190817263544536271809faebdcc0b1a29384756
uuid=6f1d2c3b-4a59-4687-9a0b-1c2d3e4f5a6b
args=(--salt="$salt" --uuid="$uuid")

prepare_cache() {
	if [ "$cache" = cold ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches || die "cannot drop the page cache (CACHE=cold needs root)"
	else
		cat "$data" >/dev/null
	fi
}

# run_tool NAME CMD... runs one format into a fresh hash file and prints the
# elapsed seconds; the root hash goes to $work/NAME.root.
run_tool() {
	local name=$1
	shift
	rm -f "$work/$name.hash"
	prepare_cache
	local start end
	start=$EPOCHREALTIME
	"$@" "${args[@]}" "$data" "$work/$name.hash" >"$work/$name.out"
	end=$EPOCHREALTIME
	sed -n 's/^Root hash:[[:space:]]*//p' "$work/$name.out" >"$work/$name.root"
	awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}

imago_times=()
vs_times=()
for ((i = 1; i <= runs; i++)); do
	# Alternate the order so neither tool always runs first.
	if ((i % 2)); then
		vs_times+=("$(run_tool veritysetup "$veritysetup" format)")
		imago_times+=("$(run_tool imago "$imago" verity format)")
	else
		imago_times+=("$(run_tool imago "$imago" verity format)")
		vs_times+=("$(run_tool veritysetup "$veritysetup" format)")
	fi
	log "run $i: veritysetup ${vs_times[-1]} s, imago ${imago_times[-1]} s"
done

root_vs=$(cat "$work/veritysetup.root")
root_imago=$(cat "$work/imago.root")
[ -n "$root_vs" ] && [ "$root_vs" = "$root_imago" ] || die "root hashes differ: veritysetup $root_vs, imago $root_imago"
cmp -s "$work/veritysetup.hash" "$work/imago.hash" || die "hash files differ"

stats() { printf '%s\n' "$@" | sort -n | awk '{ t[NR] = $1 } END { printf "%s %s\n", t[1], t[int((NR + 1) / 2)] }'; }
read -r vs_best vs_median < <(stats "${vs_times[@]}")
read -r im_best im_median < <(stats "${imago_times[@]}")

awk -v bytes="$bytes" -v runs="$runs" -v cache="$cache" -v cpus="$(nproc)" \
	-v vb="$vs_best" -v vm="$vs_median" -v ib="$im_best" -v im="$im_median" -v root="$root_imago" 'BEGIN {
	mib = bytes / 1048576
	printf "verity format of %.0f MiB, %d runs each, %s page cache, %d CPUs\n", mib, runs, cache, cpus
	printf "root hash %s (identical, hash files identical)\n", root
	printf "%-12s %8s %8s %10s\n", "tool", "best s", "median s", "best MiB/s"
	printf "%-12s %8.3f %8.3f %10.0f\n", "veritysetup", vb, vm, mib / vb
	printf "%-12s %8.3f %8.3f %10.0f\n", "imago", ib, im, mib / ib
	printf "speed-up (veritysetup / imago): best %.2fx, median %.2fx\n", vb / ib, vm / im
}'
