#!/usr/bin/env bash
# One day of a production model's life: validate the new day, judge the served model on it,
# warm-start tomorrow's model from the served one, export it, then promote it (and tell the
# scoring service). Safe to rerun: a finished step is skipped, an interrupted training resumes,
# and until the last step the served model stays what it was.
#
#   examples/daily_loop.sh DATA RUNS DAY
#
#   DATA  the data set (MAC layout); the new day's clicks are DATA/train/DAY.parquet
#   RUNS  where the daily runs live; RUNS/current points at the served run
#   DAY   the new training day's name (e.g. train-08)
#
# Environment (all optional):
#   MALT            the malt command (default: malt)
#   AS_OF           train on the labels known at this time (unix seconds or ISO-8601), e.g. the
#                   end of DAY on the labels' clock; unset: the labels as the data holds them
#   EXPORT_FORMAT   onnx (default) or torchscript
#   SERVE_URL       a running `malt serve` (e.g. http://127.0.0.1:8000): reloaded on promotion
#
# Before the first day, train the model the chain starts from and make it current:
#   malt train --data DATA --train-days 7 --out RUNS/train-06 && ln -s train-06 RUNS/current
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 DATA RUNS DAY" >&2
    exit 2
fi
data=$1 runs=$2 day=$3
malt=${MALT:-malt}
format=${EXPORT_FORMAT:-onnx}
current=$runs/current
out=$runs/$day

if [[ ! -e $current/metrics.json ]]; then
    echo "$current is not a finished run: train the first model and link it (see $0)" >&2
    exit 3
fi
served=$(cd "$current" && pwd -P)

# 1. The new day must be valid before anything else happens (exit 2 or 3 names the problem).
$malt prepare --data "$data" > /dev/null

# 2. Tomorrow's metric of the served model. Labels still arriving make today's figure a
#    floor; the same command a conversion window later gives the matured score.
if [[ $served != $(cd "$runs" && pwd -P)/$day ]]; then
    $malt eval --run "$served" --data "$data" --day "$day" > "$runs/$day.served-score.txt"
fi

# 3. Train on the new day from the served model: skipped when done, resumed when interrupted.
if [[ -e $out/metrics.json ]]; then
    echo "$out is finished: not trained again"
elif [[ -e $out/config.json ]]; then
    $malt train --resume --out "$out"
else
    $malt train --init-from "$served" --init-optimiser --data "$data" \
        --train-from "$day" --train-days 1 ${AS_OF:+--as-of "$AS_OF"} --out "$out"
fi

# 4. The file a serving system loads (written whole or not at all; replaced when rerun).
extension=$([[ $format == onnx ]] && echo onnx || echo pt)
$malt export --run "$out" --format "$format" --out "$runs/$day.$extension" --overwrite

# 5. Promote: one rename swaps the link, so a reader sees the old run or the new, never none.
ln -sfn "$day" "$runs/.current.next"
mv -T "$runs/.current.next" "$current"
if [[ -n ${SERVE_URL:-} ]]; then
    curl --fail --silent --show-error -X POST "$SERVE_URL/admin/reload" \
        -H 'content-type: application/json' -d "{\"run\": \"$(cd "$out" && pwd -P)\"}"
    echo
fi
echo "served: $out"
