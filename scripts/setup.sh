#!/usr/bin/env bash
# Sets up everything amesh needs on a fresh Debian machine and builds it:
# Debian packages (when missing; needs root), npm dependencies, TypeScript, BPF objects and the
# native addon. Idempotent: a second run only rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Debian packages: tool → package that provides it.
declare -A NEED=(
  [clang]=clang [llc]=llvm [bpftool]=bpftool [ip]=iproute2 [nft]=nftables [iptables]=iptables
  [tcpdump]=tcpdump [stunnel4]=stunnel4 [iperf3]=iperf3 [openssl]=openssl [nsenter]=util-linux
  [curl]=curl [make]=make [g++]=g++ [python3]=python3 [unshare]=util-linux [sysctl]=procps
  # the sandbox: real kubectl for users and tests, host programs behind the nginx/busybox images
  [kubectl]=kubernetes-client [busybox]=busybox [nginx]=nginx-light
  # L7 comparators and the closed-loop load generator of `npm run bench:waypoint`
  [haproxy]=haproxy [wrk]=wrk
  # the dashboard's browser test (playwright-core drives it headless)
  [chromium]=chromium
)
missing=()
for tool in "${!NEED[@]}"; do command -v "$tool" >/dev/null 2>&1 || missing+=("${NEED[$tool]}"); done
# the nginx stream module (the bench's nginx mTLS pair), headers, and the emoji font the dashboard's padlock needs in headless chromium
for hdr in /usr/lib/nginx/modules/ngx_stream_module.so:libnginx-mod-stream /usr/include/bpf/libbpf.h:libbpf-dev /usr/include/libelf.h:libelf-dev /usr/include/zlib.h:zlib1g-dev /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf:fonts-noto-color-emoji; do
  [ -e "${hdr%%:*}" ] || missing+=("${hdr##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "amesh setup: these packages are missing and installing them needs root: ${missing[*]}" >&2
    echo "  run: sudo apt-get install -y ${missing[*]}   (or run this script as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # nginx and haproxy are only programs for sandbox pods and benchmarks: keep their packages from
  # starting host services.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi
else
  step "Debian packages: all present"
fi

step "checking Node.js"
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (maj < 20 || (maj === 20 && min < 19)) {
    console.error(`amesh needs Node.js 20.19 or newer (found ${process.versions.node})`);
    process.exit(1);
  }
  console.log(`node ${process.versions.node}`);'

step "installing npm dependencies"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm 11 can write a lockfile its own `npm ci` then rejects (it leaves foreign-platform
  # optional packages out); `npm install` still installs exactly the locked versions.
  if ! npm ci --no-audit --no-fund --loglevel=error 2>/tmp/amesh-npm-ci.log; then
    echo "npm ci refused the lockfile ($(grep -m1 -o 'Missing: [^ ]*' /tmp/amesh-npm-ci.log || echo 'see /tmp/amesh-npm-ci.log')); using npm install"
    npm install --no-audit --no-fund --loglevel=error
  fi
else
  echo "node_modules up to date"
fi

step "building TypeScript"
npm run --silent build:ts
step "building BPF objects"
npm run --silent build:bpf
step "building the native addon (node-addon-api + libbpf)"
npm run --silent build:native >/tmp/amesh-native-build.log 2>&1 || { cat /tmp/amesh-native-build.log >&2; echo "amesh setup: native addon build failed (log above)" >&2; exit 1; }
echo "native/build/Release/amesh_native.node"

# `amesh` on the PATH for root (the sandbox and the node agent need root): a symlink to this
# checkout's launcher. Anything else already at that path is left alone.
if [ "$(id -u)" -eq 0 ]; then
  link=/usr/local/bin/amesh
  if [ -L "$link" ] || [ ! -e "$link" ]; then
    ln -sfn "$PWD/bin/amesh.js" "$link"
    echo "$link -> $PWD/bin/amesh.js"
  else
    echo "$link exists and is not a symlink: left alone; run $PWD/bin/amesh.js" >&2
  fi
fi
step "setup complete"
