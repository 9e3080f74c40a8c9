#!/usr/bin/env bash
# Usage: out_of_tree_example.sh BUILD_DIR EXAMPLE_DIR WORK_DIR
# Installs graft from BUILD_DIR into WORK_DIR/prefix, builds the example against that prefix
# only, checks the plugin exports one symbol and loads, and trains the example's config with it.
set -euo pipefail
build=$1 example=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$example" -B "$work/example-build" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/example-build" >/dev/null
plugin="$work/example-build/graft_swish.so"
test -f "$plugin" || { echo "FAIL: $plugin was not built"; exit 1; }
exported=$(nm -D --defined-only "$plugin" | awk '{print $3}')
[[ "$exported" == "graft_get_plugin_info" ]] || { echo "FAIL: exports: $exported"; exit 1; }

graft="$work/prefix/bin/graft"   # the installed graft finds its own plugins in ../lib/graft/plugins
listing=$("$graft" plugins --plugin-dir "$work/example-build")
grep -q "^layer *swish" <<<"$listing" || { echo "FAIL: graft plugins does not list swish"; exit 1; }
cd "$work"
"$graft" train "$example/swish_sine.toml" --plugin-dir "$work/example-build" \
  --set run.epochs=15 --set run.output_dir=\"$work/runs\" --set run.progress=\"none\" | tee train.log
loss=$(grep '"event":"eval"' "$work/runs/swish_sine/metrics.jsonl" | tail -n 1 \
       | sed -E 's/.*"loss":([-0-9.eE+]+).*/\1/')
# sin(x) on [-pi, pi] has variance 0.5: a model that learned nothing scores about 0.5.
awk -v l="$loss" 'BEGIN { if (l < 0.02) { print "PASS: test mse " l; exit 0 } print "FAIL: test mse " l " >= 0.02"; exit 1 }'
