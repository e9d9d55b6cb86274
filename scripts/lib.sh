# Shared by imago's scripts: makes sure Go and the Debian packages a task
# needs are present. Sourced, not run.

GO_VERSION=1.26.8
GO_MIN_MINOR=25

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_go puts a Go toolchain of at least 1.$GO_MIN_MINOR on PATH. If none is
# installed it fetches the official toolchain from the Go module proxy (the
# same archive the go command itself uses for GOTOOLCHAIN switching).
ensure_go() {
	export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
	if command -v go >/dev/null 2>&1; then
		minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
		if [ -n "$minor" ] && [ "$minor" -ge "$GO_MIN_MINOR" ]; then
			return 0
		fi
	fi
	local arch
	case "$(uname -m)" in
	x86_64) arch=amd64 ;;
	aarch64) arch=arm64 ;;
	*) die "no Go toolchain for $(uname -m); install Go 1.$GO_MIN_MINOR or newer" ;;
	esac
	local proxy=${GOPROXY:-https://proxy.golang.org}
	proxy=${proxy%%,*}
	local url="$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip"
	log "installing Go $GO_VERSION from $url"
	ensure_packages curl unzip
	local tmp
	tmp=$(mktemp -d)
	curl -fsSL -o "$tmp/go.zip" "$url" || die "download of Go failed: $url"
	rm -rf /usr/local/go.new && mkdir -p /usr/local/go.new
	unzip -q "$tmp/go.zip" -d /usr/local/go.new
	# The toolchain zip holds golang.org/toolchain@.../ as its top directory.
	rm -rf /usr/local/go && mv /usr/local/go.new/golang.org/toolchain@*/ /usr/local/go
	rm -rf /usr/local/go.new "$tmp"
	chmod +x /usr/local/go/bin/* /usr/local/go/pkg/tool/*/* 2>/dev/null || true
	go version >/dev/null || die "Go install failed"
}

# ensure_packages installs the Debian packages named that are not installed yet.
ensure_packages() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		die "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
	fi
	log "installing ${missing[*]}"
	if [ -z "${IMAGO_APT_UPDATED:-}" ]; then
		apt-get update -qq || die "apt-get update failed"
		export IMAGO_APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
}

# build_imago builds the static imago binary into ./bin/imago.
build_imago() {
	mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -o bin/imago ./cmd/imago
}
