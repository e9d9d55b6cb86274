#!/usr/bin/env bash
# Times `imago build` of the reference image, step by step, and prints the
# size of every artifact. The first build fills the caches (package tree,
# initrd) unless they are warm already; the following RUNS builds (default
# 2) are the cached builds a developer sees on every change. Each build is
# reproducible, so the script also checks that the cached builds give the
# same bytes.
#
#   bench/build.sh             needs root, like imago build
#   RUNS=2                     cached builds after the first
#   COLD=1                     empty imago's build cache first, so the first
#                              build bootstraps Debian from the mirror
#   TMPDIR                     where the outputs go
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

runs=${RUNS:-2}
[ "$(id -u)" -eq 0 ] || die "imago build needs root"
ensure_go
ensure_packages mmdebstrap erofs-utils dosfstools mtools zstd jq
log "building imago"
build_imago
imago=$PWD/bin/imago

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cache=${IMAGO_CACHE_DIR:-/var/cache/imago}
if [ -n "${COLD:-}" ]; then
	log "emptying the build cache $cache/debian and $cache/initrd"
	rm -rf "$cache/debian" "$cache/initrd"
fi
export SOURCE_DATE_EPOCH=1700000000

# build N: one build into $work/N, its JSON summary in $work/N.json.
build() {
	"$imago" build --output-dir="$work/$1" --json >"$work/$1.json" 2>"$work/$1.log" ||
		{ tail -n 30 "$work/$1.log"; die "imago build failed"; }
}

printf '%-6s %8s %8s  %s\n' run total cached steps
for i in $(seq 0 "$runs"); do
	build "$i"
	jq -r --arg run "$i" '[$run, (.total_ns/1e9|tostring|.[0:6])+"s",
		(if .packages_cached and .initrd_cached then "yes" else "no" end),
		([.steps[] | "\(.name) \(.duration_ns/1e9*100|round/100)s"] | join(", "))] | @tsv' "$work/$i.json" |
		awk -F'\t' '{printf "%-6s %8s %8s  %s\n", $1, $2, $3, $4}'
done

echo
echo "artifacts of the last build:"
jq -r '.artifacts[] | "\(.size)\t\(.name)"' "$work/$runs.json" |
	awk -F'\t' '{printf "%14d  %8.1f MiB  %s\n", $1, $1/1048576, $2}'

# Reproducibility: the cached builds agree on every artifact but the log.
if [ "$runs" -ge 2 ]; then
	a=$(jq -r '.artifacts[] | select(.name | endswith(".build.log") | not) | "\(.sha256) \(.name)"' "$work/1.json")
	b=$(jq -r '.artifacts[] | select(.name | endswith(".build.log") | not) | "\(.sha256) \(.name)"' "$work/$runs.json")
	[ "$a" = "$b" ] || die "two builds with the same SOURCE_DATE_EPOCH differ"
	echo "builds 1 and $runs: every artifact identical"
fi
