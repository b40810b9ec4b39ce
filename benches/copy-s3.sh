#!/usr/bin/env bash
# Side-by-side benchmark of `copy` and of a restore from S3: cairn against restic (and rustic's
# copy is not measured: it needs a config file per target), on the Linux 6.1 tree of the
# corpus from ../shared/bench/prepare-corpus.sh and a real S3 server (s3s-fs, as the tests
# run it) on 127.0.0.1. One run; quote ratios, not seconds (issue 16, "done when" 5).
#   usage: benches/copy-s3.sh PATH/TO/cairn [CORPUS_DIR] [WORK_DIR]
# Steps, for each tool in turn: back up the 6.1 tree into a local repository (not timed in the
# table), copy that snapshot into an empty repository on S3, copy again (nothing to do), and
# restore the copied snapshot from S3. cairn's copy is measured twice: into a target with its
# own keys (blobs re-hashed, trees rewritten) and into one made with
# `init --copy-chunker-params` (blobs moved as they are, as restic always does).
set -euo pipefail
CAIRN=$(readlink -f "$1")
CORPUS=${2:-${CAIRN_BENCH_DIR:-/var/tmp/cairn-bench}}
WORK=${3:-$(mktemp -d /var/tmp/cairn-copy.XXXXXX)}
TREE=$CORPUS/linux-source-6.1
[ -f "$TREE/Makefile" ] || { echo "corpus missing: run shared/bench/prepare-corpus.sh" >&2; exit 2; }
S3S=$(command -v s3s-fs || true)
for c in "$(dirname "$0")/../target/tools/bin/s3s-fs" "$HOME/.cargo/bin/s3s-fs"; do
  [ -n "$S3S" ] || { [ -x "$c" ] && S3S=$c; } || true
done
[ -n "$S3S" ] || { echo "s3s-fs missing: bash .ci/test --no-run installs it" >&2; exit 2; }
rm -rf "${WORK:?}"/*; mkdir -p "$WORK/s3/bkt"
export AWS_ACCESS_KEY_ID=bench-access-key AWS_SECRET_ACCESS_KEY=bench-secret-key-0123456789
export CAIRN_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
export CAIRN_FROM_PASSWORD=bench-password RESTIC_FROM_PASSWORD=bench-password
export CAIRN_CACHE_DIR=$WORK/cache.cairn RESTIC_CACHE_DIR=$WORK/cache.restic
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$S3S" --host 127.0.0.1 --port "$PORT" --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
  "$WORK/s3" >"$WORK/s3s-fs.log" 2>&1 &
S3PID=$!
trap 'kill $S3PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
URL=s3:http://127.0.0.1:$PORT/bkt
declare -A T C
run() { # run NAME CMD...: time CMD, keep wall and CPU seconds
  local name=$1; shift
  if ! /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$@" >"$WORK/out" 2>&1; then
    echo "FAILED: $name" >&2; tail -5 "$WORK/out" >&2; T[$name]=NaN; C[$name]=NaN; return 0
  fi
  read -r s u sy < "$WORK/time"; T[$name]=$s; C[$name]=$(awk -v a="$u" -v b="$sy" 'BEGIN{printf "%.2f", a+b}')
}
"$CAIRN" -r "$WORK/local.cairn" init >/dev/null
"$CAIRN" -r "$WORK/local.cairn" backup --host bench "$TREE" >/dev/null
restic -r "$WORK/local.restic" init >/dev/null
restic -r "$WORK/local.restic" backup --host bench "$TREE" >/dev/null
"$CAIRN" -r "$URL/cairn" init >/dev/null
"$CAIRN" -r "$URL/cairn-shared" init --copy-chunker-params --from-repo "$WORK/local.cairn" >/dev/null
restic -r "$URL/restic" init --copy-chunker-params --from-repo "$WORK/local.restic" >/dev/null
run "cairn copy (own keys)" "$CAIRN" -r "$URL/cairn" copy --from-repo "$WORK/local.cairn"
run "cairn copy (shared keys)" "$CAIRN" -r "$URL/cairn-shared" copy --from-repo "$WORK/local.cairn"
run "restic copy" restic -r "$URL/restic" copy --from-repo "$WORK/local.restic"
run "cairn copy again" "$CAIRN" -r "$URL/cairn" copy --from-repo "$WORK/local.cairn"
run "restic copy again" restic -r "$URL/restic" copy --from-repo "$WORK/local.restic"
run "cairn restore from S3" "$CAIRN" -r "$URL/cairn" restore latest --target "$WORK/restore.cairn"
run "restic restore from S3" restic -r "$URL/restic" restore latest --target "$WORK/restore.restic"
printf '%-28s %10s %10s\n' step 'wall s' 'cpu s'
for s in "cairn copy (own keys)" "cairn copy (shared keys)" "restic copy" "cairn copy again" "restic copy again" \
  "cairn restore from S3" "restic restore from S3"; do
  printf '%-28s %10s %10s\n' "$s" "${T[$s]}" "${C[$s]}"
done
ratio() { awk -v a="${T[$1]}" -v b="${T[$2]}" 'BEGIN{ if (a=="NaN"||b=="NaN"||b==0) print "NaN"; else printf "%.2f", a/b }'; }
echo "copy, own keys / restic:    $(ratio "cairn copy (own keys)" "restic copy")"
echo "copy, shared keys / restic: $(ratio "cairn copy (shared keys)" "restic copy")"
echo "restore from S3 / restic:   $(ratio "cairn restore from S3" "restic restore from S3")"
restored=$(find "$WORK/restore.cairn" -type d -name linux-source-6.1 | head -1)
if [ -n "$restored" ] && diff -rq --no-dereference "$TREE" "$restored" >/dev/null; then
  echo "cairn restore identical: yes"
else
  echo "cairn restore identical: NO"; exit 1
fi
