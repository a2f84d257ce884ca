#!/usr/bin/env bash
# Builds race-enabled test binaries once, then runs them one package at a time: what `make test`
# does with `go test -race`, without linking every binary twice (once to compile ahead, once more,
# serially, in the run) and with no two load tests at once.
#
#   ci/race-tests.sh build DIR PKG...        build the PKGs' test binaries (go test -race -c) into
#                                            DIR, with DIR/manifest naming each package's binary
#   ci/race-tests.sh run DIR TIMEOUT PKG...  run each PKG's binary from DIR in the package's
#                                            directory, as go test does, one after the other
#
# run prints what `go test` prints for a list of packages: "ok" with the time for a package that
# passed, the binary's whole output and "FAIL" for one that did not; a package without tests
# prints "?". Every package runs even when one fails; the exit status is 1 when any failed.
# GO names the go command (default go).
set -uo pipefail

go=${GO:-go}
cmd=${1:?usage: race-tests.sh build|run DIR ...}
dir=${2:?usage: race-tests.sh build|run DIR ...}
shift 2

mkdir -p "$dir" && dir=$(cd "$dir" && pwd) # absolute: run starts each binary in its package's directory

case $cmd in
build)
	# One go test -c for every package at once, into DIR/round-N/NAME.test; packages whose last
	# path element another one of the round already has (loadgen, cmd/loadgen) go to the next
	# round. Only packages with test files have a binary; -w leaves out the debug information, as
	# go test does for the binaries it runs (stack traces keep their file and line).
	rm -rf "$dir"/round-* "$dir/manifest"
	: >"$dir/manifest"
	read -r -a pkgs <<<"$("$go" list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' "$@" | tr '\n' ' ')"
	round=0
	while [ ${#pkgs[@]} -gt 0 ]; do
		round=$((round + 1))
		out="$dir/round-$round"
		mkdir -p "$out"
		now=() later=() names=" "
		for p in "${pkgs[@]}"; do
			if [[ $names == *" ${p##*/} "* ]]; then later+=("$p"); else now+=("$p"); names+="${p##*/} "; fi
		done
		"$go" test -race -ldflags=-w -c -o "$out/" "${now[@]}" || exit 1
		for p in "${now[@]}"; do echo "$p $out/${p##*/}.test"; done >>"$dir/manifest"
		pkgs=("${later[@]}")
	done
	;;
run)
	timeout=${1:?usage: race-tests.sh run DIR TIMEOUT PKG...}
	shift
	status=0
	list=$("$go" list -f '{{.ImportPath}} {{.Dir}}' "$@") || exit 1
	while read -r pkg pkgdir; do
		bin=$(awk -v p="$pkg" '$1 == p {print $2}' "$dir/manifest")
		if [ -z "$bin" ]; then
			printf '?   \t%s\t[no test files]\n' "$pkg"
			continue
		fi
		log=$(mktemp)
		start=$(date +%s%N)
		(cd "$pkgdir" && "$bin" -test.paniconexit0 -test.count=1 -test.timeout="$timeout") >"$log" 2>&1
		code=$?
		ms=$((($(date +%s%N) - start) / 1000000))
		took=$(printf '%d.%03ds' $((ms / 1000)) $((ms % 1000)))
		if [ $code -eq 0 ]; then
			printf 'ok  \t%s\t%s\n' "$pkg" "$took"
		else
			cat "$log"
			printf 'FAIL\t%s\t%s\n' "$pkg" "$took"
			status=1
		fi
		rm -f "$log"
	done <<<"$list"
	exit $status
	;;
*)
	echo "race-tests.sh: unknown command $cmd (build or run)" >&2
	exit 2
	;;
esac
