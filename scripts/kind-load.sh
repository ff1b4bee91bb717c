#!/usr/bin/env bash
# Builds amesh's container images and loads them into a kind cluster:
#   scripts/kind-load.sh [--cluster NAME] [--tag TAG] [--hub HUB] [--builder docker|podman|buildah]
# Needs a container engine (docker with a running daemon, podman or buildah) and kind. The image
# names are the ones the manifests and the controller use (daemonset/*.yaml, waypoint/*.yaml);
# then `amesh install` (image.pullPolicy IfNotPresent, the default) uses them; --hub X names them
# X/node-agent… for `amesh install --set image.hub=X`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Dockerfile and the image names built from it (the waypoint image is also the gateway's).
IMAGES=(
  "images/node/Dockerfile amesh/node-agent"
  "images/controller/Dockerfile amesh/controller"
  "images/waypoint/Dockerfile amesh/waypoint amesh/gateway"
)

CLUSTER=kind
TAG=$(node -p 'require("./package.json").version')
HUB=amesh
BUILDER=""
usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
}
while [ $# -gt 0 ]; do
  case "$1" in
    --cluster) CLUSTER=${2:?--cluster needs a name}; shift 2 ;;
    --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
    --hub) HUB=${2:?--hub needs a registry/prefix}; shift 2 ;;
    --builder) BUILDER=${2:?--builder needs docker, podman or buildah}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "kind-load: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done

fail() {
  echo "kind-load: $*" >&2
  exit 1
}
step() { echo "==> $*"; }

# A docker CLI without a reachable daemon does not count (`docker info` fails).
usable() {
  case "$1" in
    docker) command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 ;;
    podman) command -v podman >/dev/null 2>&1 ;;
    buildah) command -v buildah >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}
if [ -n "$BUILDER" ]; then
  usable "$BUILDER" || fail "--builder $BUILDER is not usable here (not installed, or docker's daemon is not running: see \`docker info\`)"
else
  for candidate in docker podman buildah; do
    if usable "$candidate"; then BUILDER=$candidate; break; fi
  done
  [ -n "$BUILDER" ] || fail "no container engine: install Docker (with its daemon running), Podman or Buildah. \
Without one, scripts/build-image-rootfs.sh builds and smoke-tests what each image would contain."
fi
command -v kind >/dev/null 2>&1 || fail "kind is not installed: see https://kind.sigs.k8s.io/docs/user/quick-start/#installation (the images are built with $BUILDER first only when kind exists)"
kind get clusters 2>/dev/null | grep -qx "$CLUSTER" || fail "no kind cluster named '$CLUSTER' (kind get clusters: $(kind get clusters 2>/dev/null | tr '\n' ' ')); create one with \`kind create cluster --name $CLUSTER\` or pass --cluster"

built=()
for entry in "${IMAGES[@]}"; do
  read -r dockerfile first others <<<"$entry"
  first=${first/#amesh\//$HUB/}
  others=${others//amesh\//$HUB/}
  tags=(-t "$first:$TAG")
  for name in $others; do tags+=(-t "$name:$TAG"); done
  step "building $first:$TAG ${others:+(also ${others// /, }) }from $dockerfile with $BUILDER"
  case "$BUILDER" in
    docker|podman) "$BUILDER" build -f "$dockerfile" --build-arg "VERSION=$TAG" "${tags[@]}" . ;;
    buildah) buildah bud -f "$dockerfile" --build-arg "VERSION=$TAG" "${tags[@]}" . ;;
  esac
  built+=("$first:$TAG")
  for name in $others; do built+=("$name:$TAG"); done
done

i=0
for image in "${built[@]}"; do
  i=$((i + 1))
  step "loading $image into kind cluster $CLUSTER ($i/${#built[@]})"
  if [ "$BUILDER" = docker ]; then
    kind load docker-image "$image" --name "$CLUSTER"
  else
    # kind reads images from docker only; other engines hand it an archive.
    archive=$(mktemp --suffix=.tar)
    if [ "$BUILDER" = podman ]; then exported=(podman save --format docker-archive -o "$archive" "$image"); else exported=(buildah push "$image" "docker-archive:$archive:$image"); fi
    "${exported[@]}" >/dev/null || { rm -f "$archive"; fail "could not export $image with: ${exported[*]}"; }
    kind load image-archive "$archive" --name "$CLUSTER" || { rm -f "$archive"; fail "kind could not load $image"; }
    rm -f "$archive"
  fi
done
step "done: ${#built[@]} images in kind cluster $CLUSTER; next: amesh precheck && amesh install (kind's context kind-$CLUSTER is kubectl's current one after \`kind create cluster\`)"
