#!/usr/bin/env bash
# Compiles the eBPF capture programs, one source per attach point (bpf/capture.bpf.c: tc;
# bpf/tw-syn.bpf.c: sk_lookup), with BTF (-g), which the loader needs for the pinned maps and for
# writing the .rodata knobs, and links them into the one object the loader takes,
# bpf/build/capture.bpf.o (bpftool gen object: libbpf's static linker merges the shared maps).
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

command -v bpftool >/dev/null 2>&1 || fail "'bpftool' not found; linking the BPF object needs it (run scripts/setup.sh)"

sources=(bpf/capture.bpf.c bpf/tw-syn.bpf.c)
out=bpf/build/capture.bpf.o
parts=bpf/build/parts
mkdir -p "$parts"
objects=()
for src in "${sources[@]}"; do
  obj="$parts/$(basename "$src" .bpf.c).o"
  cmd=("$CLANG" -O2 -g -Wall -target bpf -I"$ARCH_INCLUDE" -Ibpf/lib -c "$src" -o "$obj")
  echo "build-bpf: ${cmd[*]}"
  "${cmd[@]}"
  objects+=("$obj")
done
echo "build-bpf: bpftool gen object $out ${objects[*]}"
bpftool gen object "$out" "${objects[@]}"
echo "build-bpf: wrote $out"
