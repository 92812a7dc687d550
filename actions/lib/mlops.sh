#!/usr/bin/env bash
# Prints the path of the `mlops` binary the actions run, installing it first when needed:
#   1. MLOPS_BIN, when set (local use and tests);
#   2. the prebuilt release asset for this runner, when this checkout is that release (its
#      Cargo.toml version is the one in checksums.txt): from the runner's tool cache, or
#      downloaded from the GitHub release and verified against the SHA-256 committed in
#      checksums.txt (never against anything the server says); a mismatch stops here. The binary
#      inside is checked against its own SHA-256 in checksums.txt (`HEX  ASSET:mlops`), and a
#      cached binary runs only after it is hashed against that line again (else it is installed
#      anew). Without such a line (a checksums.txt from before it was recorded), the cache keeps
#      the asset too, and both are hashed again;
#   3. else a release build of the action's own checkout (`cargo build --locked`), or the one an
#      earlier run made of exactly these sources: with MLOPS_BUILD_CACHE set (a directory GitHub's
#      cache restores), a build whose recorded SHA-256 of the checkout's files is this
#      checkout's is run as is, and a new build is copied there for the next run.
# Everything but the path goes to stderr.
#
# `mlops.sh --cache-key` prints, for $GITHUB_OUTPUT, `key=` and `path=` of that cache when this
# run would build from source (nothing when MLOPS_BIN or a release serves), and installs nothing.
set -euo pipefail
cache_key=false
if [[ "${1:-}" == "--cache-key" ]]; then
  cache_key=true
fi
if [[ -n "${MLOPS_BIN:-}" ]]; then
  $cache_key || echo "$MLOPS_BIN"
  exit 0
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
checkout="$here/../.."

release="$(awk '$1 == "version" { print $2; exit }' "$here/checksums.txt")"
crate="$(awk -F'"' '/^version = "/ { print $2; exit }' "$checkout/Cargo.toml")"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
  Darwin-x86_64) target=x86_64-apple-darwin ;;
  Darwin-arm64 | Darwin-aarch64) target=aarch64-apple-darwin ;;
  MINGW*-x86_64 | MSYS*-x86_64 | CYGWIN*-x86_64) target=x86_64-pc-windows-msvc ;;
  *) target="" ;;
esac
exe=mlops
if [[ "$target" == *windows* ]]; then
  exe=mlops.exe
fi
asset="mlops-$release-$target.tar.gz"
want="$(awk -v asset="$asset" '$2 == asset { print $1; exit }' "$here/checksums.txt")"
want_exe="$(awk -v key="$asset:$exe" '$2 == key { print $1; exit }' "$here/checksums.txt")"

# The SHA-256 of the file $1, or of stdin without an argument: OpenSSL's where there is one (it
# uses the CPU's SHA instructions, several times faster than coreutils' on a 100 MB binary).
sha256() {
  if command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$@" | awk '{ print $1 }'
  elif command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$@" | awk '{ print $1 }'
  else
    shasum -a 256 "$@" | awk '{ print $1 }'
  fi
}

# Whether the cached binary is the verified release's: against its own line in checksums.txt,
# or (without one) the cached asset against checksums.txt and the binary against the asset's.
cached_ok() {
  if [[ -n "$want_exe" ]]; then
    [[ "$(sha256 "$cache/$exe")" == "$want_exe" ]]
  else
    [[ -f "$cache/$asset" && "$(sha256 "$cache/$asset")" == "$want" ]] &&
      [[ "$(tar -xzOf "$cache/$asset" "$exe" | sha256)" == "$(sha256 "$cache/$exe")" ]]
  fi
}

if [[ "$release" != "none" && "$release" == "$crate" && -n "$target" && -n "$want" ]]; then
  if $cache_key; then
    exit 0
  fi
  cache="${RUNNER_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}}/mlops/$release/$target"
  if [[ -x "$cache/$exe" ]]; then
    # Whoever can write the tool cache could have replaced the binary: it is hashed again.
    if cached_ok; then
      echo "mlops $release: from the tool cache ($cache), verified again" >&2
      echo "$cache/$exe"
      exit 0
    fi
    echo "warning: the cached mlops in $cache is not the verified release asset's: installing it again" >&2
  fi
  base="${MLOPS_RELEASE_URL:-https://github.com/mlops-rs/mlops/releases/download}"
  url="$base/v$release/$asset"
  work="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/mlops-install.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "mlops $release: downloading $url" >&2
  if ! curl --fail --silent --show-error --location --retry 3 --output "$work/$asset" "$url"; then
    echo "error: cannot download $url" >&2
    echo "  = hint: check the network, or set MLOPS_BIN to an mlops binary you trust" >&2
    exit 1
  fi
  got="$(sha256 "$work/$asset")"
  if [[ "$got" != "$want" ]]; then
    echo "error: $asset has SHA-256 $got, but actions/lib/checksums.txt at this commit says $want: not running it" >&2
    echo "  = hint: the download was changed or corrupted; nothing was installed. Retry, and report it if it persists" >&2
    exit 1
  fi
  mkdir -p "$work/unpacked"
  tar -xzf "$work/$asset" -C "$work/unpacked"
  if [[ ! -f "$work/unpacked/$exe" ]]; then
    echo "error: $asset has no $exe" >&2
    exit 1
  fi
  if [[ -n "$want_exe" && "$(sha256 "$work/unpacked/$exe")" != "$want_exe" ]]; then
    echo "error: the $exe inside $asset is not the one actions/lib/checksums.txt names: not running it" >&2
    exit 1
  fi
  # Into the cache in one move, so a concurrent job never sees half a binary.
  mkdir -p "$(dirname "$cache")"
  staged="$(mktemp -d "$(dirname "$cache")/.staging.XXXXXX")"
  mv "$work/unpacked/$exe" "$staged/$exe"
  chmod +x "$staged/$exe"
  mv "$work/$asset" "$staged/$asset"
  rm -rf "$cache"
  mv "$staged" "$cache"
  echo "mlops $release: verified ($want), installed in $cache" >&2
  echo "$cache/$exe"
  exit 0
fi

if [[ "$release" == "none" ]]; then
  why="no release is recorded in actions/lib/checksums.txt"
elif [[ "$release" != "$crate" ]]; then
  why="this checkout is version $crate, not the release $release"
elif [[ -z "$target" ]]; then
  why="no prebuilt binary for $(uname -s) $(uname -m)"
else
  why="the release $release has no asset for $target"
fi
# The SHA-256 of the list of every file of the checkout (but its build output and git data)
# with its own SHA-256, in a fixed order: what a source build is made of, the templates and
# schema it embeds included.
sources() {
  local -a sum=(sha256sum)
  command -v sha256sum >/dev/null 2>&1 || sum=(shasum -a 256)
  (cd "$checkout" && find . -type f -not -path './target/*' -not -path './.git/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 "${sum[@]}" | "${sum[@]}" | awk '{ print $1 }')
}
digest="$(sources)"
if $cache_key; then
  echo "key=mlops-build-$(uname -s)-$(uname -m)-$digest"
  echo "path=${RUNNER_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}}/mlops/build"
  exit 0
fi
built="${MLOPS_BUILD_CACHE:-}"
if [[ -n "$built" && -x "$built/$exe" && "$(cat "$built/sources.sha256" 2>/dev/null)" == "$digest" ]]; then
  echo "mlops: the build of this checkout's sources ($digest) from the cache ($built)" >&2
  echo "$built/$exe"
  exit 0
fi
echo "mlops: building from the action's checkout ($why)" >&2
cargo build --release --locked --manifest-path "$checkout/Cargo.toml" -p mlops --features wgpu >&2
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$checkout/Cargo.toml" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
if [[ -n "$built" ]]; then
  # Into the cache directory in one move each, the digest last: a half-copied binary is never
  # taken for a build of these sources.
  mkdir -p "$built"
  rm -f "$built/sources.sha256"
  cp "$target_dir/release/$exe" "$built/.$exe.partial"
  mv -f "$built/.$exe.partial" "$built/$exe"
  echo "$digest" >"$built/sources.sha256"
  echo "$built/$exe"
  exit 0
fi
echo "$target_dir/release/$exe"
