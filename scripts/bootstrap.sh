#!/usr/bin/env bash
# Create .venv (when missing) and install Allele with every extra it is tested with.
# Called by the Makefile; safe to run again (pip skips what is already there).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
    echo ">> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# llama-cpp-python compiles from source. A build with -march=native picks up AMX/AVX-512 on these
# machines, and the kernel refuses those instructions at run time (SIGILL); pip's wheel cache does
# not key on CMAKE_ARGS, so a native wheel cached by an earlier install would come back. Build it
# first, portable (AVX2/FMA/F16C only when this CPU has them), without the cache (about 6 minutes
# on 2 cores), unless this venv already holds such a build (marked by .llama-portable).
portable_flags() {
    local flags="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    local cpu
    cpu=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
    for f in avx avx2 fma f16c; do
        local up
        up=$(echo "$f" | tr '[:lower:]' '[:upper:]')
        if echo " $cpu " | grep -q " $f "; then flags="$flags -DGGML_$up=ON"; else flags="$flags -DGGML_$up=OFF"; fi
    done
    echo "$flags"
}
LLAMA_MARK="$VENV/.llama-portable"
if [ ! -f "$LLAMA_MARK" ] || [ -n "${ALLELE_REBUILD_LLAMA:-}" ]; then
    echo ">> building llama-cpp-python (portable CPU flags; about 6 minutes the first time)"
    CMAKE_ARGS="$(portable_flags)" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
        "$VENV/bin/python" -m pip install --quiet --no-cache-dir --force-reinstall --no-deps \
        'llama-cpp-python[server]==0.3.36'
    portable_flags > "$LLAMA_MARK"
fi
# valgrind before Allele: its header decides whether the `instructions` instrument's C extension
# is built (without it Allele installs and works, that instrument aside; the script only warns).
bash scripts/sysdeps.sh valgrind
# torch is pinned (the CPU build on this machine's disk).
echo ">> installing allele[all,dev] into $VENV (the first time takes several minutes)"
"$VENV/bin/python" -m pip install --quiet -e '.[all,dev]'
