#!/bin/sh
# One device call that continues pretraining the default model on a CUDA machine and scores what it made.
#
# Trains from the shipped export for MINUTES (EMA snapshots at 50%, 75% and the end, f16, one file each), then
# scores every snapshot with recognize.py on the GPU (16 grid prompts x seeds 1-4, DDIM with epsilon from the
# clipped x0 at guidance 5, as the shipped sampling.json; the last one at 3 too, and with "<v1> " in front of every
# prompt: 10% of the training prompts get a random identifier, so <v1>..<v8> stay neutral as the model moves on,
# as neutral_identifiers.py made them). Everything lands in OUTDIR:
# ema-STEP.safetensors, snapshots.json, train.log, recognize.log: six files, under the device tool's eight. The
# training gets a hard stop (SIGTERM: it ends at the next step with a snapshot) MINUTES + 3 minutes after it starts,
# to cover the model load and a torch.compile check.
#
# Usage, from the repository root (carry tools/reference/.data/corpus.npz):
#   sh tools/reference/device_train.sh MINUTES OUTDIR [more train_default.py arguments, which override these]
# On the device tool: sh tools/reference/device_train.sh 7 $OUT
# Here, as a dry run on the CPU: DEVICE=cpu PYTHON=/usr/bin/python3 RECOGNIZE_ARGS='--seeds 1 --steps 2' \
#   sh tools/reference/device_train.sh 0.5 /tmp/dev --batch 4 --profile-steps 2
# Back here: recognize.py --ckpt DIR/ema-STEP.safetensors scores a snapshot again; from_snapshot.py turns the chosen
# one into a checkpoint for export_default.py (tools/reference/README.md).
set -eu
MINUTES=${1:?minutes of training}
OUTDIR=${2:?output folder}
shift 2
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
rm -f /tmp/device-train.pt /tmp/device-train.pt.log

if [ "$DEVICE" = cuda ]; then
  set -- --bf16 --compile default --threads 8 "$@"
fi
STOP=$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 + 180 }')
status=0
(cd "$HERE" && timeout -s TERM -k 60 "$STOP" "$PY" train_default.py --device "$DEVICE" --from-export \
  --batch 1024 --lr 4e-4 --lr-min 2e-5 --warmup 200 --cosine-to-end --ema 0.9995 --min-snr 5 --focus-frac 0.6 \
  --focus-categories 'Smileys & Emotion,Animals & Nature,Food & Drink,Travel & Places,Objects,Activities' \
  --identifier-dropin 0.1 --seed 22 --minutes "$MINUTES" --snapshot-dir "$OUTDIR" --snapshot-at 0.5,0.75 --log-every 200 \
  --probe-every 2000 --profile-steps 10 --ckpt-seconds 1e9 --no-export --ckpt /tmp/device-train.pt "$@") \
  > "$OUTDIR/train.log" 2>&1 || status=$?
tail -n 5 "$OUTDIR/train.log"
[ "$status" = 0 ] || echo "train_default.py exited with $status (124: stopped by the hard stop)"

snaps=$(cd "$OUTDIR" && ls ema-*.safetensors 2>/dev/null | sort -t- -k2 -n)
[ -n "$snaps" ] || { echo "no snapshot in $OUTDIR"; exit 1; }
last=$(echo "$snaps" | tail -n 1)
for snap in $snaps; do
  for g in 5 3; do
    [ "$g" = 5 ] || [ "$snap" = "$last" ] || continue
    echo "# $snap, guidance $g" >> "$OUTDIR/recognize.log"
    # shellcheck disable=SC2086 # RECOGNIZE_ARGS is a list of arguments (a dry run: --seeds 1 --steps 2)
    "$PY" "$HERE/recognize.py" --ckpt "$OUTDIR/$snap" --device "$DEVICE" --guidance "$g" --recompute-eps \
      ${RECOGNIZE_ARGS:-} 2>&1 | tail -n 1 >> "$OUTDIR/recognize.log"
  done
done
echo "# $last, guidance 5, prompts prefixed <v1>" >> "$OUTDIR/recognize.log"
# shellcheck disable=SC2086
"$PY" "$HERE/recognize.py" --ckpt "$OUTDIR/$last" --device "$DEVICE" --guidance 5 --recompute-eps \
  --prompt-prefix '<v1> ' ${RECOGNIZE_ARGS:-} 2>&1 | tail -n 1 >> "$OUTDIR/recognize.log"
cat "$OUTDIR/recognize.log"
