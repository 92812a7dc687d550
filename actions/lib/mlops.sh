#!/usr/bin/env bash
# Prints the path of the `mlops` binary the actions run: MLOPS_BIN, an `mlops` on PATH, or a
# release build from this checkout of the actions (slow; prebuilt binaries replace it).
set -euo pipefail
if [[ -n "${MLOPS_BIN:-}" ]]; then
  echo "$MLOPS_BIN"
elif command -v mlops >/dev/null 2>&1; then
  command -v mlops
else
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  manifest_path="$here/../../Cargo.toml"
  cargo build --release --locked --manifest-path "$manifest_path" -p mlops >&2
  target="$(cargo metadata --format-version 1 --no-deps --manifest-path "$manifest_path" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  echo "$target/release/mlops"
fi
