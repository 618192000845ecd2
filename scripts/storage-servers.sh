#!/usr/bin/env bash
# Installs the storage servers the storage end-to-end suite
# (internal/storagee2e) runs as separate processes, into a git-ignored
# directory (default .tools/, or $BACKFILL_STORAGE_TOOLS):
#
#   bin/minio               MinIO, `go install github.com/minio/minio@$MINIO_VERSION`
#   bin/fake-gcs-server     `go install github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION`
#   azurite/                `npm install azurite@$AZURITE_VERSION` (azurite-blob)
#
# Everything comes from the Go module proxy and the npm registry. An install
# that is already there at the pinned version is kept (a stamp file records
# the version), so only the first run pays for the builds. A server that
# cannot be installed is reported, and the suite skips it saying so; the
# script itself never fails `make test`.
set -uo pipefail

MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
FAKE_GCS_VERSION=${FAKE_GCS_VERSION:-v1.56.1}
AZURITE_VERSION=${AZURITE_VERSION:-3.37.0}

cd "$(dirname "$0")/.."
TOOLS=${BACKFILL_STORAGE_TOOLS:-$PWD/.tools}
mkdir -p "$TOOLS/bin" "$TOOLS/logs"
GO=${GO:-go}

# stamp NAME VERSION: true when NAME was installed at VERSION.
installed() { [ -f "$TOOLS/stamps/$1" ] && [ "$(cat "$TOOLS/stamps/$1")" = "$2" ]; }
mark() { mkdir -p "$TOOLS/stamps" && echo "$2" > "$TOOLS/stamps/$1"; }

status=()

go_tool() { # name module version binary
	local name=$1 module=$2 version=$3 bin=$4
	if installed "$name" "$version" && [ -x "$TOOLS/bin/$bin" ]; then
		status+=("$name $version: installed")
		return
	fi
	if ! command -v "$GO" >/dev/null; then
		status+=("$name: SKIPPED (no go command)")
		return
	fi
	local start=$SECONDS
	echo "storage-servers: building $name $version (go install $module@$version; the first build takes minutes on 2 cores)"
	if GOBIN="$TOOLS/bin" CGO_ENABLED=0 "$GO" install -trimpath -ldflags='-s -w' "$module@$version" \
		>"$TOOLS/logs/$name.log" 2>&1; then
		mark "$name" "$version"
		status+=("$name $version: built in $((SECONDS - start)) s")
	else
		status+=("$name: NOT INSTALLED (go install failed, see $TOOLS/logs/$name.log); its tests will skip")
	fi
}

go_tool minio github.com/minio/minio "$MINIO_VERSION" minio
go_tool fake-gcs-server github.com/fsouza/fake-gcs-server "$FAKE_GCS_VERSION" fake-gcs-server

if installed azurite "$AZURITE_VERSION" && [ -x "$TOOLS/azurite/node_modules/.bin/azurite-blob" ]; then
	status+=("azurite $AZURITE_VERSION: installed")
elif ! command -v npm >/dev/null || ! command -v node >/dev/null; then
	status+=("azurite: SKIPPED (no node/npm; apt-get install nodejs npm); its tests will skip")
else
	start=$SECONDS
	echo "storage-servers: installing azurite $AZURITE_VERSION (npm install)"
	mkdir -p "$TOOLS/azurite"
	[ -f "$TOOLS/azurite/package.json" ] || echo '{"name":"backfill-tools-azurite","private":true}' > "$TOOLS/azurite/package.json"
	if (cd "$TOOLS/azurite" && npm install --no-audit --no-fund --loglevel=error --save-exact "azurite@$AZURITE_VERSION") \
		>"$TOOLS/logs/azurite.log" 2>&1; then
		mark azurite "$AZURITE_VERSION"
		status+=("azurite $AZURITE_VERSION: installed in $((SECONDS - start)) s")
	else
		status+=("azurite: NOT INSTALLED (npm install failed, see $TOOLS/logs/azurite.log); its tests will skip")
	fi
fi

for s in "${status[@]}"; do echo "storage-servers: $s"; done
exit 0
