#!/usr/bin/env bash
# Builds squall's container images locally, with no registry: every image is FROM scratch.
#
#   ci/docker/build-images.sh TAG [PREFIX [NAME...]]
#
# builds NAMEs (default all four: refserver loadgen toxiproxy redis). Needs bin/refserver and
# bin/loadgen built static (make build does; $SQUALL_BIN_DIR points elsewhere), Go (Toxiproxy's
# server is built here from its module, at the version go.mod pins) and Debian's redis-server
# (make deps). Each image is built from a context directory holding only what it copies
# (bin/images/NAME; $SQUALL_IMAGES_CTX moves bin/images), so the context sent to the engine is a
# few megabytes, never the repository. Every image is tagged PREFIX/NAME:TAG and
# PREFIX/NAME:latest. Prints one line per image.
set -euo pipefail

tag=${1:?usage: build-images.sh TAG [PREFIX [NAME...]]}
prefix=${2:-squall}
shift $(( $# < 2 ? $# : 2 ))
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(refserver loadgen toxiproxy redis)
want() { [[ " ${names[*]} " == *" $1 "* ]]; }
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${SQUALL_BIN_DIR:-$root/bin}
ctx=${SQUALL_IMAGES_CTX:-$root/bin/images}
toxiproxy_module=github.com/Shopify/toxiproxy/v2
toxiproxy_want=${TOXIPROXY_VERSION:-v2.12.0}

cd "$root"
for b in refserver loadgen; do
	want "$b" || continue
	if [ ! -x "$bin/$b" ]; then echo "build-images: $bin/$b missing (run make build)" >&2; exit 1; fi
	if ldd "$bin/$b" >/dev/null 2>&1; then
		echo "build-images: $bin/$b is dynamically linked (build it with CGO_ENABLED=0)" >&2; exit 1
	fi
done
rm -rf "$ctx"
for b in refserver loadgen; do
	want "$b" || continue
	mkdir -p "$ctx/$b"
	cp "$bin/$b" "$ctx/$b/"
done
if want toxiproxy; then
	have=$(go list -m -f '{{.Version}}' "$toxiproxy_module")
	if [ "$have" != "$toxiproxy_want" ]; then
		echo "build-images: go.mod pins $toxiproxy_module $have, the image wants $toxiproxy_want" >&2; exit 1
	fi
	mkdir -p "$ctx/toxiproxy"
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X $toxiproxy_module.Version=$toxiproxy_want" \
		-o "$ctx/toxiproxy/toxiproxy-server" "$toxiproxy_module/cmd/server"
fi
if want redis; then
	redis=$(command -v redis-server || true)
	if [ -z "$redis" ]; then echo "build-images: redis-server missing (make deps installs Debian's)" >&2; exit 1; fi
	# redis-server and every shared object it loads, at their own paths (the loader included).
	redis=$(readlink -f "$redis")
	mkdir -p "$ctx/redis/rootfs/usr/bin"
	cp "$redis" "$ctx/redis/rootfs/usr/bin/redis-server"
	ldd "$redis" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
		mkdir -p "$ctx/redis/rootfs$(dirname "$lib")"
		cp -L "$lib" "$ctx/redis/rootfs$lib"
	done
fi

for name in "${names[@]}"; do
	if [ ! -f "ci/docker/$name.Dockerfile" ]; then echo "build-images: no image $name (ci/docker/$name.Dockerfile)" >&2; exit 1; fi
	if ! out=$(docker build --quiet --label "org.opencontainers.image.version=$tag" --label "dev.squall.image=$name" \
		-f "ci/docker/$name.Dockerfile" -t "$prefix/$name:$tag" -t "$prefix/$name:latest" "$ctx/$name" 2>&1); then
		echo "build-images: $name:" >&2; echo "$out" >&2; exit 1
	fi
	echo "built $prefix/$name:$tag ($(du -sh "$ctx/$name" | cut -f1) context)"
done
# A rebuild leaves the previous build of each image untagged: remove those (only ours, by label).
docker image prune --force --filter dangling=true --filter label=dev.squall.image >/dev/null 2>&1 || true
