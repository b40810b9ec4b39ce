#!/usr/bin/env bash
# Builds cairn and runs its main job on a local-disk repository: init, backup of a real
# directory (SOURCE, default: this project's src/), snapshots, restore, and a comparison of
# the restored tree with the source.   usage: bash .ci/demo.sh [SOURCE]
set -euo pipefail
cd "$(dirname "$0")/.."
SOURCE=$(readlink -f "${1:-src}")
cargo build --release --locked
WORK=$(mktemp -d /tmp/cairn-demo.XXXXXX)
export CAIRN_REPOSITORY="$WORK/repo" CAIRN_PASSWORD="${CAIRN_PASSWORD:-demo-password}"
cairn=target/release/cairn
$cairn init
$cairn backup --host demo --tag demo "$SOURCE"
$cairn backup --host demo --tag demo "$SOURCE"      # second run: deduplicated
$cairn snapshots
$cairn restore latest --target "$WORK/restore" --verify
diff -r --no-dereference "$SOURCE" "$WORK/restore$SOURCE" && echo "restored tree is identical to $SOURCE (repository and restore in $WORK)"
