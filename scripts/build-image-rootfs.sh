#!/usr/bin/env bash
# Builds, without a container engine, the /app tree an image's runtime stage would hold, then
# smoke-runs it with Node 24 (the images' Node):
#   scripts/build-image-rootfs.sh node|controller|waypoint OUTDIR
# OUTDIR/app gets what images/<image>/Dockerfile copies into /app: package.json, bin/, proto/,
# daemonset/, waypoint/, dist/src/ (compiled here), production node_modules (`npm ci --omit=dev`),
# and for the node image the eBPF object and the native addon built from source in a scratch copy
# (the working tree's bpf/build and native/build are not touched).
# It does not produce the Debian layer (apt packages) or image metadata: that needs an engine.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

fail() {
  echo "build-image-rootfs: $*" >&2
  exit 1
}
step() { echo "==> $*"; }

[ $# -eq 2 ] || fail "usage: $0 node|controller|waypoint OUTDIR"
IMAGE=$1
OUT=$2
case "$IMAGE" in
  node) CMD=node-agent ;;
  controller) CMD=controller ;;
  waypoint) CMD=waypoint-proxy ;;
  *) fail "unknown image '$IMAGE': expected node, controller or waypoint (images/*/Dockerfile)" ;;
esac
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then fail "$OUT is not empty; give a new or empty directory"; fi
mkdir -p "$OUT/app"
OUT=$(cd "$OUT" && pwd)
APP=$OUT/app
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
started=$SECONDS

step "[1/5] TypeScript → $APP/dist/src (tsc -p tsconfig.build.json)"
npx tsc -p tsconfig.build.json --outDir "$scratch/dist"
mkdir -p "$APP/dist"
cp -a "$scratch/dist/src" "$APP/dist/src"

step "[2/5] production node_modules (npm ci --omit=dev)"
cp package.json package-lock.json "$APP/"
npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefix "$APP" >"$scratch/npm.log" 2>&1 || { cat "$scratch/npm.log" >&2; fail "npm ci --omit=dev failed"; }
rm "$APP/package-lock.json"

step "[3/5] package files (bin, proto, daemonset, waypoint)"
cp -a bin proto daemonset waypoint "$APP/"

if [ "$IMAGE" = node ]; then
  step "[4/5] eBPF object and native addon, built from source in a scratch copy"
  mkdir -p "$scratch/src/scripts" "$scratch/src/native"
  cp scripts/build-bpf.sh "$scratch/src/scripts/"
  cp -a bpf "$scratch/src/bpf"
  rm -rf "$scratch/src/bpf/build"
  cp -a native/binding.gyp native/src "$scratch/src/native/"
  cp package.json "$scratch/src/"
  # binding.gyp asks node-addon-api for its include dir from the scratch copy.
  ln -s "$REPO/node_modules" "$scratch/src/node_modules"
  bash "$scratch/src/scripts/build-bpf.sh"
  (cd "$scratch/src" && npm run --silent build:native >"$scratch/gyp.log" 2>&1) || { cat "$scratch/gyp.log" >&2; fail "the native addon did not build (npm run build:native)"; }
  install -D -m 0644 "$scratch/src/bpf/build/capture.bpf.o" "$APP/bpf/build/capture.bpf.o"
  install -D -m 0755 "$scratch/src/native/build/Release/amesh_native.node" "$APP/native/build/Release/amesh_native.node"
else
  step "[4/5] no eBPF object or native addon in the $IMAGE image"
fi

step "[5/5] smoke run with Node 24 (npx -y -p node@24 node)"
node24() { npx -y -p node@24 node "$@"; }
version=$(node24 --version)
case "$version" in v24.*) ;; *) fail "npx -p node@24 gave Node $version" ;; esac
# node's own flags from the image's ENTRYPOINT (exec form: ["node", flags…, "/app/bin/amesh.js"]):
# a flag this Node refuses stops it at start, i.e. the pod would crash-loop.
read -r -a NODE_FLAGS < <(node -e '
  const line = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter((l) => /^ENTRYPOINT\s/.test(l)).at(-1);
  const argv = line ? JSON.parse(line.replace(/^ENTRYPOINT\s+/, "")) : [];
  if (argv[0] !== "node" || argv.at(-1) !== "/app/bin/amesh.js") { console.error(`unexpected ENTRYPOINT: ${line}`); process.exit(1); }
  console.log(argv.slice(1, -1).join(" "));' "images/$IMAGE/Dockerfile") || fail "could not read the ENTRYPOINT of images/$IMAGE/Dockerfile"
# NODE_PATH unset and cwd outside the repo: everything must resolve from $APP alone.
run() { (cd "$scratch" && unset NODE_PATH && node24 "$@"); }
run ${NODE_FLAGS[@]+"${NODE_FLAGS[@]}"} "$APP/bin/amesh.js" --help >"$scratch/help.txt" || fail "amesh --help failed under Node $version with the ENTRYPOINT's flags (${NODE_FLAGS[*]:-none})"
grep -q "$CMD" "$scratch/help.txt" || fail "amesh --help does not list $CMD"
run ${NODE_FLAGS[@]+"${NODE_FLAGS[@]}"} "$APP/bin/amesh.js" "$CMD" --help >/dev/null || fail "amesh $CMD --help failed under Node $version"
echo "    amesh --help and amesh $CMD --help ran under Node $version with the ENTRYPOINT's node flags (${NODE_FLAGS[*]:-none})"
if grep -qE '^ +version( |$)' "$scratch/help.txt"; then
  run "$APP/bin/amesh.js" version --client | sed 's/^/    /' || fail "amesh version --client failed under Node $version"
fi
if [ "$IMAGE" = node ]; then
  run -e 'const m = require(process.argv[1]); if (typeof m.loadObject !== "function") throw new Error("no loadObject"); console.log("    native addon loads under Node " + process.version + " (" + Object.keys(m).length + " functions)")' \
    "$APP/native/build/Release/amesh_native.node"
  machine=$(od -An -j18 -N2 -tu2 "$APP/bpf/build/capture.bpf.o" | tr -d ' ')
  [ "$machine" = 247 ] || fail "capture.bpf.o is not an eBPF ELF object (e_machine $machine, want 247)"
  echo "    capture.bpf.o is an eBPF ELF object"
  if [ "$(id -u)" -eq 0 ]; then
    # The image's own addon and object, for real: load, pin and attach in a throw-away netns.
    run "$APP/bin/amesh.js" precheck --no-cluster -o json >"$scratch/precheck.json" || true
    probe=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const c = r.checks.find((x) => x.id === "bpf-features"); console.log(`${c.status} ${c.message}`)' "$scratch/precheck.json") ||
      fail "amesh precheck printed no report: $(cat "$scratch/precheck.json")"
    case "$probe" in PASS*) echo "    eBPF probe with the tree's addon and object: $probe" ;; *) fail "eBPF probe with the tree's addon and object: $probe" ;; esac
  else
    echo "    (not root: the eBPF load/attach probe of amesh precheck was not run)"
  fi
fi
step "done in $((SECONDS - started)) s: $(du -sh "$APP" | cut -f1) in $APP ($(find "$APP" -type f | wc -l) files); run it like the image: node $APP/bin/amesh.js $CMD"
