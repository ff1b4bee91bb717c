#!/usr/bin/env bash
# Compiles the eBPF capture program: bpf/capture.bpf.c → bpf/build/capture.bpf.o, with BTF (-g),
# which the loader needs for the pinned maps and for writing the .rodata knobs.
set -euo pipefail
cd "$(dirname "$0")/.."

CLANG=${CLANG:-clang}
fail() {
  echo "build-bpf: $*" >&2
  exit 1
}
command -v "$CLANG" >/dev/null 2>&1 || fail "'$CLANG' not found; the BPF program needs clang (run scripts/setup.sh)"
[ -e /usr/include/bpf/bpf_helpers.h ] || fail "/usr/include/bpf/bpf_helpers.h not found; install libbpf-dev (run scripts/setup.sh)"
# Debian keeps asm/ in the multiarch directory; -target bpf does not look there by itself.
ARCH_INCLUDE="/usr/include/$(uname -m)-linux-gnu"
[ -e "$ARCH_INCLUDE/asm/types.h" ] || fail "$ARCH_INCLUDE/asm/types.h not found; install linux-libc-dev (run scripts/setup.sh)"

src=bpf/capture.bpf.c
out=bpf/build/capture.bpf.o
mkdir -p "$(dirname "$out")"
cmd=("$CLANG" -O2 -g -Wall -target bpf -I"$ARCH_INCLUDE" -Ibpf/lib -c "$src" -o "$out")
echo "build-bpf: ${cmd[*]}"
"${cmd[@]}"
echo "build-bpf: wrote $out"
