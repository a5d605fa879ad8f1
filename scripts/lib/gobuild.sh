# Shared by tools/ndbref/build.sh and tools/overlayref/build.sh: builds a Go
# reference program offline, against a private GOPATH and Debian's Go
# packages under /usr/share/gocode (GO111MODULE=off, GOPROXY=off; nothing is
# downloaded).

# go_build_offline NAME SRC_DIR GOPATH_DIR BIN LOG: builds the program in
# SRC_DIR into BIN unless BIN is newer than every file under SRC_DIR. The
# build goes to BIN.tmp and is moved into place only when it succeeds, so a
# failed build never leaves a half-written binary. On failure prints the
# compiler's log (kept in LOG) and returns non-zero. GOCACHE defaults to a
# directory next to BIN.
go_build_offline() {
    local name=$1 src=$2 gopath=$3 bin=$4 log=$5
    if [ -x "$bin" ] && [ -z "$(find "$src" -type f -newer "$bin" -print -quit)" ]; then
        return 0
    fi
    if ! (
        cd "$src" &&
            GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$gopath:/usr/share/gocode" \
                GOCACHE="${GOCACHE:-$(dirname "$bin")/gocache}" \
                go build -o "$bin.tmp" .
    ) >"$log" 2>&1; then
        cat "$log" >&2
        echo "go build of $name failed (log: $log)" >&2
        return 1
    fi
    mv -f "$bin.tmp" "$bin"
}
