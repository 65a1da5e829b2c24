#!/usr/bin/env bash
# gpu_check.sh: the CUDA target, checked on a machine with an NVIDIA GPU, in under 8 minutes.
#
#   bash scripts/gpu_check.sh            on the GPU machine (also: make gpu-check)
#   bash scripts/gpu_check.sh --bundle   on a machine WITHOUT a GPU, before a device run:
#                                        builds portable binaries, copies the shared libraries
#                                        they need and ../shared's fixtures and bench into
#                                        gpu-bundle/ (git-ignored), to carry to the GPU machine
#
# On the GPU machine it
#   1. builds kanc/kanrun (make), or uses gpu-bundle/ when the build libraries are missing;
#   2. prints the devices (nvidia-smi, kanrun info);
#   3. runs `kanrun verify --device cuda --precision fp32` on every fixture in $SHARED/fixtures
#      (within 1e-4), then `--precision bf16` (bf16 GEMM operands, within 2^-5) on a fixture of
#      each kind with the KAN layers blocked (so that they take the bf16 GEMMs);
#   4. trains gpt-nano (models/kansformers.kdl, vocab 256) 200 steps on the GPU (fp32) and on
#      the CPU from the same seed, and compares the loss curves;
#   5. times `kanrun bench --device cuda`, fp32 and bf16 (tokens/s, MFU, peak memory) against
#      shared/bench/torch_train.py (fp32 eager, and --dtype bf16 --compile) for the
#      GPT-2-small-sized KAN (block 1024, batch 8) and kansformers gpt-mini (vocab 50257,
#      block 256, batch 64) with blocked KAN layers, the minGPT MLP at both shapes, then
#      both KANs with fused layers, as far as the time budget allows;
#   6. prints a short table last. Logs go to $OUT (the device tool's folder) or build/gpu-check/.
#
# Environment: SHARED (the shared/ folder; default ./shared, gpu-bundle/shared, ../shared),
# GPU_CHECK_BUDGET (seconds, default 450), GPU_CHECK_STEPS (training steps, default 200),
# KANC_CUBLASLT / KANC_NVRTC (library paths, found automatically when unset).
# A dry run of this script without a GPU (the CUDA path emulated, tiny shapes):
#   GPU_CHECK_DEVICE=emu GPU_CHECK_STEPS=5 GPU_CHECK_TRAIN_ARGS="--set n_layer=1 --batch 2"
#   bash scripts/gpu_check.sh
# (off the GPU every bench configuration runs at a tiny shape, GPU_CHECK_BENCH_ARGS).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
BUNDLE="$ROOT/gpu-bundle"

# ---------------------------------------------------------------- --bundle (no GPU needed)
if [ "${1:-}" = "--bundle" ]; then
    set -e
    SRC_SHARED=${SHARED:-$ROOT/../shared}
    rm -rf "$BUNDLE"
    mkdir -p "$BUNDLE/bin" "$BUNDLE/lib" "$BUNDLE/shared"
    # portable code (any x86-64 with AVX2), not -march=native of this machine
    CFLAGS="-O3 -march=x86-64-v3" make -s -j"$(nproc)" BUILD="$BUNDLE/build" all
    cp "$BUNDLE/build/kanc" "$BUNDLE/build/kanrun" "$BUNDLE/bin/"
    rm -rf "$BUNDLE/build"
    # every library they load but glibc's own
    ldd "$BUNDLE/bin/kanrun" "$BUNDLE/bin/kanc" | awk '/=> \// {print $3}' | sort -u |
        grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' |
        while read -r lib; do cp -L "$lib" "$BUNDLE/lib/"; done
    for d in fixtures bench reference; do
        [ -d "$SRC_SHARED/$d" ] && cp -r "$SRC_SHARED/$d" "$BUNDLE/shared/"
    done
    if [ -d "$ROOT/.git" ] && ! grep -qx '/gpu-bundle/' "$ROOT/.git/info/exclude" 2>/dev/null; then
        mkdir -p "$ROOT/.git/info"
        echo '/gpu-bundle/' >>"$ROOT/.git/info/exclude"
    fi
    echo "gpu_check: bundle ready in $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)); on the GPU machine run"
    echo "  bash scripts/gpu_check.sh        (carry gpu-bundle)"
    exit 0
fi

# ---------------------------------------------------------------- the GPU run
T0=$SECONDS
BUDGET=${GPU_CHECK_BUDGET:-450}
STEPS=${GPU_CHECK_STEPS:-200}
DEV=${GPU_CHECK_DEVICE:-cuda}
read -r -a TRAIN_ARGS <<<"${GPU_CHECK_TRAIN_ARGS:-}"
OUTDIR=${OUT:-$ROOT/build/gpu-check}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu_check.log"
: >"$LOG"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-XXXXXX")
export KANC_CACHE_DIR="$WORK/cubin-cache" KANC_ROOT="$ROOT"
ROWS=()   # "check|result|detail" for the final table
BENCH=()  # "config|kanc|torch fp32|torch bf16"

left() { echo $((BUDGET - (SECONDS - T0))); }
log() { echo "$*" | tee -a "$LOG"; }
row() { ROWS+=("$1|$2|$3"); }
# run LIMIT CMD...: at most LIMIT seconds (and never past the budget); output appended to the log
run() {
    local limit=$1
    shift
    local l
    l=$(left)
    [ "$limit" -gt "$l" ] && limit=$l
    if [ "$limit" -lt 5 ]; then
        echo "(skipped: out of time) $*" >>"$LOG"
        return 124
    fi
    echo "+ [${limit}s] $*" >>"$LOG"
    timeout --kill-after=5 "$limit" "$@"
}
# the last JSON line of a file, field $2 (a number), or "-"
jfield() {
    python3 - "$1" "$2" <<'EOF' 2>/dev/null || echo "-"
import json, sys
line = [l for l in open(sys.argv[1]) if l.lstrip().startswith("{")][-1]
v = json.loads(line)[sys.argv[2]]
print(f"{v:.0f}" if isinstance(v, (int, float)) and abs(v) >= 100 else v)
EOF
}

log "gpu_check: $(date -u +%FT%TZ) on $(hostname), budget ${BUDGET}s, logs in $OUTDIR"

# shared/ (fixtures, the PyTorch peer)
if [ -z "${SHARED:-}" ]; then
    for s in "$ROOT/shared" "$BUNDLE/shared" "$ROOT/../shared"; do
        if [ -d "$s/fixtures" ]; then SHARED=$s; break; fi
    done
fi
SHARED=${SHARED:-$ROOT/shared}
export SHARED
log "shared: $SHARED"

# 1. build, or the bundle
KANC=""
KANRUN=""
if pkg-config --exists libcjson libpcre2-8 2>/dev/null && command -v bison >/dev/null && command -v flex >/dev/null &&
    [ -e /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h ]; then
    if run 180 make -s -j"$(nproc)" all >>"$LOG" 2>&1; then
        KANC="$ROOT/build/kanc"
        KANRUN="$ROOT/build/kanrun"
        row build ok "make"
    else
        row build FAIL "make failed (see the log)"
    fi
fi
if [ -z "$KANRUN" ] && [ -x "$BUNDLE/bin/kanrun" ]; then
    export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    if "$BUNDLE/bin/kanrun" --help >/dev/null 2>&1; then
        KANC="$BUNDLE/bin/kanc"
        KANRUN="$BUNDLE/bin/kanrun"
        row build ok "gpu-bundle (no build libraries here)"
    fi
fi
if [ -z "$KANRUN" ]; then
    row build FAIL "no build libraries (cjson, pcre2, openblas, flex, bison) and no gpu-bundle/: run 'bash scripts/gpu_check.sh --bundle' where they are and carry gpu-bundle"
fi

# 2. devices; the CUDA libraries if the default names do not find them
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$LOG"
find_lib() { # $1: glob of the file name
    local d f
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
        $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null); do
        [ -d "$d" ] || continue
        f=$(find "$d" -maxdepth 4 -name "$1" 2>/dev/null | sort | tail -1)
        if [ -n "$f" ]; then echo "$f"; return 0; fi
    done
    return 1
}
if [ -n "$KANRUN" ]; then
    INFO=$("$KANRUN" info 2>&1)
    if echo "$INFO" | grep -q "^cublasLt:  not found" && [ -z "${KANC_CUBLASLT:-}" ]; then
        KANC_CUBLASLT=$(find_lib 'libcublasLt.so.1[23]*') && export KANC_CUBLASLT
    fi
    if echo "$INFO" | grep -q "^nvrtc:     NVRTC not found" && [ -z "${KANC_NVRTC:-}" ]; then
        KANC_NVRTC=$(find_lib 'libnvrtc.so.1[23]*') && export KANC_NVRTC
    fi
    INFO=$("$KANRUN" info 2>&1)
    echo "$INFO" | tee -a "$LOG"
    if echo "$INFO" | grep -q "auto means: cuda" || { [ "$DEV" = emu ] && echo "$INFO" | grep -q "^emu: *\/"; }; then
        row device ok "$(echo "$INFO" | grep -m1 'device 0' | sed 's/^ *//')"
    else
        row device FAIL "$(echo "$INFO" | grep -m1 '^cuda:' | cut -c12-)"
        KANRUN_GPU=0
    fi
fi
KANRUN_GPU=${KANRUN_GPU:-1}
[ -z "$KANRUN" ] && KANRUN_GPU=0

# 3. every fixture on the device
if [ "$KANRUN_GPU" = 1 ] && [ -d "$SHARED/fixtures" ]; then
    # verify_one LABEL KAN_KERNEL PRECISION FIXTURE [MODEL.kdl]: one verify, counted in
    # pass / fail (worst: the failed labels) and logged
    verify_one() {
        local label=$1 kk=$2 prec=$3 f=$4
        shift 4
        if KANC_KAN_KERNEL=$kk run 150 "$KANRUN" verify "$@" "$f" --device "$DEV" --precision "$prec" \
            >"$WORK/verify.txt" 2>&1; then
            pass=$((pass + 1))
        else
            fail=$((fail + 1))
            worst="$worst $label"
        fi
        cat "$WORK/verify.txt" >>"$LOG"
        local tag=""
        [ "$prec" = fp32 ] || tag=" $prec"
        log "verify $label$tag on $DEV: $(tail -1 "$WORK/verify.txt")"
    }
    pass=0
    fail=0
    worst=""
    for f in "$SHARED"/fixtures/*.safetensors; do
        b=$(basename "$f" .safetensors)
        case $b in
        gpt_kansformers) m=kansformers ;;
        gpt_hybrid) m=hybrid ;;
        gpt_mlp) m=mingpt ;;
        kan_linear*) m=kan-linear ;;
        *) continue ;;
        esac
        verify_one "$b" "${KANC_KAN_KERNEL:-auto}" fp32 "$f" "models/$m.kdl"
    done
    # the other bases' fixtures (their models are named inside), and the KAN fixtures with
    # every layer on the blocked path (the cost model keeps these small models fused)
    for f in "$SHARED"/fixtures/kan-workflow/{kan_chebyshev_layer,kan_rbf_layer,gpt_kansformers_chebyshev,gpt_kansformers_rbf}.safetensors \
        "blocked:kansformers:$SHARED/fixtures/gpt_kansformers.safetensors" \
        "blocked:hybrid:$SHARED/fixtures/gpt_hybrid.safetensors" \
        "blocked:kan-linear:$SHARED/fixtures/kan_linear_nonuniform.safetensors"; do
        kk=auto
        margs=()
        case $f in blocked:*)
            IFS=: read -r kk m f <<<"$f"
            margs=("models/$m.kdl") ;;
        esac
        [ -f "$f" ] || continue
        verify_one "$(basename "$f" .safetensors)${margs:+ ($kk)}" "$kk" fp32 "$f" "${margs[@]}"
    done
    if [ $fail = 0 ]; then row "verify --device $DEV" ok "$pass fixture checks within 1e-4"; else row "verify --device $DEV" FAIL "$fail failed:$worst"; fi
    # bf16 GEMM operands: a fixture of every kind, the KAN layers blocked (the fused kernels stay fp32)
    pass=0
    fail=0
    worst=""
    for f in "mingpt:$SHARED/fixtures/gpt_mlp.safetensors" "kansformers:$SHARED/fixtures/gpt_kansformers.safetensors" \
        "hybrid:$SHARED/fixtures/gpt_hybrid.safetensors" "kan-linear:$SHARED/fixtures/kan_linear_nonuniform.safetensors" \
        "-:$SHARED/fixtures/kan-workflow/kan_chebyshev_layer.safetensors" \
        "-:$SHARED/fixtures/kan-workflow/kan_rbf_layer.safetensors" \
        "-:$SHARED/fixtures/kan-workflow/kan_update_grid.safetensors" \
        "-:$SHARED/fixtures/kan-workflow/kan_reg_loss.safetensors"; do
        IFS=: read -r m f <<<"$f"
        margs=()
        [ "$m" != - ] && margs=("models/$m.kdl")
        [ -f "$f" ] || continue
        verify_one "$(basename "$f" .safetensors)" blocked bf16 "$f" "${margs[@]}"
    done
    if [ $fail = 0 ]; then row "verify bf16 --device $DEV" ok "$pass fixture checks within 2^-5"; else row "verify bf16 --device $DEV" FAIL "$fail failed:$worst"; fi
elif [ "$KANRUN_GPU" = 1 ]; then
    row "verify --device $DEV" SKIP "no fixtures in $SHARED (carry shared/ or gpu-bundle)"
fi

# 4. the same training on the GPU and the CPU
if [ "$KANRUN_GPU" = 1 ]; then
    cat compiler/*.c runtime/*.c runtime/*.h docs/*.md >"$WORK/corpus.txt" 2>/dev/null
    common=(train models/kansformers.kdl --data "$WORK/corpus.txt" --steps "$STEPS" --seed 1337 --warmup 20
        --eval-every 0 --save-every 100000 --log-every 1 --quiet "${TRAIN_ARGS[@]}")
    run 150 "$KANRUN" "${common[@]}" --device "$DEV" --precision fp32 --out "$WORK/train_cuda" >>"$LOG" 2>&1
    rc_gpu=$?
    run 200 "$KANRUN" "${common[@]}" --device cpu --out "$WORK/train_cpu" >>"$LOG" 2>&1
    rc_cpu=$?
    if [ $rc_gpu = 0 ] && [ $rc_cpu = 0 ]; then
        cmp=$(python3 - "$WORK/train_cuda/metrics.jsonl" "$WORK/train_cpu/metrics.jsonl" <<'EOF'
import json, sys
def curve(p):
    d = {}
    for l in open(p):
        r = json.loads(l)
        if "loss" in r: d[r["step"]] = r
    return d
g, c = curve(sys.argv[1]), curve(sys.argv[2])
steps = sorted(set(g) & set(c))
diff = [abs(g[s]["loss"] - c[s]["loss"]) for s in steps]
first = max(diff[:10]) if diff else float("nan")
ms = lambda d: sorted(r["ms"] for r in d.values())[len(d) // 2]
ok = steps and first < 1e-3 and max(diff) < 0.05
print(f"{'ok' if ok else 'FAIL'}|{len(steps)} steps: max |dloss| {max(diff):.2e} (first 10: {first:.2e}); "
      f"final {g[steps[-1]]['loss']:.4f} vs {c[steps[-1]]['loss']:.4f}; {ms(g):.1f} vs {ms(c):.1f} ms/step")
EOF
)
        row "train gpu vs cpu" "${cmp%%|*}" "${cmp#*|}"
    else
        row "train gpu vs cpu" FAIL "exit status gpu $rc_gpu, cpu $rc_cpu (124: timed out)"
    fi
fi

# 4b. the artifact: kanc -o for this GPU, then the cubin alone as the model
if [ "$KANRUN_GPU" = 1 ] && [ -f "$WORK/train_cuda/metrics.jsonl" ]; then
    sm=$(echo "$INFO" | grep -m1 '  device 0:' | grep -o 'sm_[0-9]*')
    if run 120 "$KANC" models/kansformers.kdl -o "$WORK/step.cubin" --arch "${sm:-sm_90}" --precision fp32 \
        "${TRAIN_ARGS[@]}" >>"$LOG" 2>&1 &&
        "$KANRUN" info "$WORK/step.cubin" >"$WORK/info.txt" 2>&1 &&
        run 90 "$KANRUN" train "$WORK/step.cubin" --data "$WORK/corpus.txt" --steps "$((STEPS < 20 ? STEPS : 20))" \
            --seed 1337 --warmup 20 --eval-every 0 --save-every 100000 --quiet --device "$DEV" \
            --out "$WORK/train_cubin" >>"$LOG" 2>&1; then
        head -20 "$WORK/info.txt" >>"$LOG"
        same=$(python3 - "$WORK/train_cuda/metrics.jsonl" "$WORK/train_cubin/metrics.jsonl" "$WORK/info.txt" <<'EOF'
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(p) if '"loss"' in l][:20] for p in sys.argv[1:3])
d = max(abs(x - y) for x, y in zip(a, b)) if a and b else float("nan")
import re
kern = [l for l in open(sys.argv[3]) if re.match(r"\s+\d+ \S+ ", l) and "cuBLASLt" not in l]
print(f"{'ok' if d < 1e-5 else 'FAIL'}|{len(b)} steps from the cubin alone, max |dloss| vs the .kdl run {d:.1e}; "
      f"{len(kern)} kernel launches listed by kanrun info")
EOF
        )
        row "kanc -o + cubin run" "${same%%|*}" "${same#*|}"
    else
        row "kanc -o + cubin run" FAIL "see the log"
    fi
fi

# 5. throughput against PyTorch, the most telling configurations first: the
#    GPT-2-small-sized KAN and kansformers gpt-mini, each with the KAN layers blocked and
#    fused, and the minGPT MLP at the same shapes
G2="--set n_layer=12 --set n_head=12 --set n_embd=768 --set vocab_size=50257 --set block_size=1024 --batch 8"
G2T="--n-layer 12 --n-head 12 --n-embd 768 --vocab 50257 --block 1024 --batch 8"
MINI="--preset gpt-mini --set vocab_size=50257 --set block_size=256 --batch 64"
MINIT="--preset gpt-mini --vocab 50257 --block 256 --batch 64"
# name|model|KAN kernel|kanrun args|torch layout|torch args
CONFIGS=(
    "KAN gpt2-small T1024 B8|kansformers|blocked|$G2|kansformers|$G2T"
    "KAN gpt-mini T256 B64|kansformers|blocked|$MINI|kansformers|$MINIT"
    "MLP gpt2-small T1024 B8|mingpt|auto|$G2|mlp|$G2T"
    "MLP gpt-mini T256 B64|mingpt|auto|$MINI|mlp|$MINIT"
    "KAN gpt2-small fused|kansformers|fused|$G2|-|-"
    "KAN gpt-mini fused|kansformers|fused|$MINI|-|-"
)
# without a GPU (the dry run), every configuration at a tiny shape
TINY=${GPU_CHECK_BENCH_ARGS:-"--set n_layer=1 --set n_head=2 --set n_embd=16 --set vocab_size=256 --set block_size=8 --batch 2"}
# "tok/s, MFU, peak memory" of a bench JSON line (kanc's or the peer's)
summ() {
    python3 - "$1" <<'EOF' 2>/dev/null || echo "-"
import json, sys
v = json.loads([l for l in open(sys.argv[1]) if l.lstrip().startswith("{")][-1])
mfu = v.get("mfu")
print(f"{v['tokens_per_s']:.0f} tok/s" + (f", MFU {100 * mfu:.1f}%" if isinstance(mfu, (int, float)) else "")
      + f", {v['peak_bytes'] / 1e9:.2f} GB")
EOF
}
bench_one() { # one CONFIGS entry
    local name model kk args tl targs k="-" kb="-" t32="-" tbf="-" tag
    IFS='|' read -r name model kk args tl targs <<<"$1"
    [ "$DEV" = cuda ] || args=$TINY
    tag=$(echo "$name" | tr -c 'A-Za-z0-9' _)
    read -r -a A <<<"$args"
    if [ "$KANRUN_GPU" = 1 ] && KANC_KAN_KERNEL=$kk run 200 "$KANRUN" bench "models/$model.kdl" "${A[@]}" \
        --steps 10 --warmup 2 --device "$DEV" --precision fp32 >"$WORK/kanc_$tag.json" 2>>"$LOG"; then
        k=$(summ "$WORK/kanc_$tag.json")
    fi
    cat "$WORK/kanc_$tag.json" >>"$LOG" 2>/dev/null
    if [ "$KANRUN_GPU" = 1 ] && KANC_KAN_KERNEL=$kk run 200 "$KANRUN" bench "models/$model.kdl" "${A[@]}" \
        --steps 10 --warmup 2 --device "$DEV" --precision bf16 >"$WORK/kbf_$tag.json" 2>>"$LOG"; then
        kb=$(summ "$WORK/kbf_$tag.json")
    fi
    cat "$WORK/kbf_$tag.json" >>"$LOG" 2>/dev/null
    if [ "$DEV" = cuda ] && [ "$tl" != - ] && [ -f "$SHARED/bench/torch_train.py" ]; then
        read -r -a TA <<<"$targs"
        local torch=(python3 "$SHARED/bench/torch_train.py" --layout "$tl" "${TA[@]}" --steps 10 --warmup 2 --device cuda)
        if run 120 "${torch[@]}" >"$WORK/t32_$tag.json" 2>>"$LOG"; then t32=$(summ "$WORK/t32_$tag.json"); fi
        if run 180 "${torch[@]}" --dtype bf16 --compile >"$WORK/tbf_$tag.json" 2>>"$LOG"; then
            tbf=$(summ "$WORK/tbf_$tag.json")
        fi
        cat "$WORK/t32_$tag.json" "$WORK/tbf_$tag.json" >>"$LOG" 2>/dev/null
    fi
    BENCH+=("$name|$k|$kb|$t32|$tbf")
}
for cfg in "${CONFIGS[@]}"; do
    if [ "$(left)" -lt 60 ]; then
        BENCH+=("${cfg%%|*}|skipped (time)|-|-|-")
        continue
    fi
    bench_one "$cfg"
done

# 6. the table, last
{
    echo
    echo "==== gpu_check: $((SECONDS - T0)) s ===="
    printf '%-22s %-6s %s\n' check result detail
    for r in "${ROWS[@]}"; do
        IFS='|' read -r a b c <<<"$r"
        printf '%-22s %-6s %s\n' "$a" "$b" "$c"
    done
    echo
    printf '%-24s %-34s %-34s %-26s %s\n' "bench" "kanc $DEV fp32" "kanc $DEV bf16" "torch fp32 eager" \
        "torch bf16+compile"
    for r in "${BENCH[@]}"; do
        IFS='|' read -r a b c d e <<<"$r"
        printf '%-24s %-34s %-34s %-26s %s\n' "$a" "$b" "$c" "$d" "$e"
    done
} | tee -a "$LOG"
rm -rf "$WORK"
for r in "${ROWS[@]}"; do
    case $r in *"|FAIL|"*) exit 1 ;; esac
done
exit 0
