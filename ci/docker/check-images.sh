#!/usr/bin/env bash
# Checks that every image build-images.sh made answers --version.
#
#   ci/docker/check-images.sh TAG [PREFIX [NAME...]]
set -euo pipefail
tag=${1:?usage: check-images.sh TAG [PREFIX [NAME...]]}
prefix=${2:-squall}
shift $(( $# < 2 ? $# : 2 ))
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(refserver loadgen toxiproxy redis)
declare -A want=([refserver]='^refserver ' [loadgen]='^loadgen ' [toxiproxy]='^toxiproxy-server version v' [redis]='^Redis server v=')
fail=0
for name in "${names[@]}"; do
	if out=$(docker run --rm "$prefix/$name:$tag" --version 2>&1) && grep -Eq "${want[$name]}" <<<"$out"; then
		echo "ok   $prefix/$name:$tag: $(head -n1 <<<"$out")"
	else
		echo "FAIL $prefix/$name:$tag: $(head -n1 <<<"$out")"; fail=1
	fi
done
exit $fail
