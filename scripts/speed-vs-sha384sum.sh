#!/usr/bin/env bash
# Paired whole-process comparison of a cold `dstack-mr measure` against `sha384sum` of the
# same files: the two commands run in turn (A B A B ...), each pair gives a ratio A/B of wall
# times, and the median ratio is what is quoted (pairs absorb the machine's drift; the
# spread says how noisy it was). Public tools only: bash, sha384sum, sort, awk.
#
#   scripts/speed-vs-sha384sum.sh [-n PAIRS] [-b BINARY] [--initrd-mib N] FIRMWARE KERNEL [INITRD] [-- MEASURE FLAGS]
#   scripts/speed-vs-sha384sum.sh [-n PAIRS] [-b BINARY] --image IMAGE [-- MEASURE FLAGS]
#
# Raw mode measures `--firmware FIRMWARE --kernel KERNEL --initrd INITRD`; with
# --initrd-mib N (and no INITRD) a random N MiB initrd is made in a temporary directory and
# removed afterwards. --image measures an image directory (or metadata.json) or a release
# tarball: sha384sum then reads the directory's firmware, kernel, initrd and metadata.json
# (the files a measurement reads), or the tarball itself. The measure flags default to
# `--json --cpu 8 --memory 16G`. "Cold" means a new process each run; the files stay in the
# page cache, as they do for sha384sum.
set -euo pipefail

pairs=15
bin=bin/dstack-mr
image=
initrd_mib=
args=()
while (($#)); do
	case $1 in
	-n) pairs=$2; shift 2 ;;
	-b) bin=$2; shift 2 ;;
	--image) image=$2; shift 2 ;;
	--initrd-mib) initrd_mib=$2; shift 2 ;;
	--) shift; break ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) args+=("$1"); shift ;;
	esac
done
flags=("$@")
((${#flags[@]})) || flags=(--json --cpu 8 --memory 16G)
[[ -x $bin ]] || { echo "$bin: not an executable (make build, or pass -b BINARY)" >&2; exit 2; }
[[ $pairs =~ ^[0-9]+$ ]] && ((pairs >= 3)) || { echo "-n $pairs: want at least 3 pairs" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -n $image ]]; then
	a=("$bin" measure "$image" "${flags[@]}")
	if [[ -d $image || $(basename "$image") == metadata.json ]]; then
		dir=$image
		[[ -d $dir ]] || dir=$(dirname "$image")
		files=()
		for field in bios kernel initrd; do
			name=$(sed -n "s/^ *\"$field\": *\"\([^\"]*\)\".*/\1/p" "$dir/metadata.json")
			[[ -n $name ]] && files+=("$dir/$name")
		done
		files+=("$dir/metadata.json")
	else
		files=("$image")
	fi
else
	((${#args[@]} >= 2)) || { echo "give FIRMWARE KERNEL [INITRD], or --image IMAGE (-h for help)" >&2; exit 2; }
	fw=${args[0]} kernel=${args[1]} initrd=${args[2]:-}
	if [[ -z $initrd && -n $initrd_mib ]]; then
		initrd=$tmp/initrd
		head -c $((initrd_mib << 20)) /dev/urandom >"$initrd"
	fi
	a=("$bin" measure --firmware "$fw" --kernel "$kernel" "${flags[@]}")
	files=("$fw" "$kernel")
	if [[ -n $initrd ]]; then
		a+=(--initrd "$initrd")
		files+=("$initrd")
	fi
fi
b=(sha384sum "${files[@]}")

# run CMD...: wall seconds of one run (bash's microsecond clock); output discarded, and a
# failing command stops the comparison.
run() {
	local t0=$EPOCHREALTIME
	"$@" >/dev/null 2>"$tmp/stderr" || { echo "failed: $*" >&2; cat "$tmp/stderr" >&2; exit 1; }
	local t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
}

echo "A: ${a[*]}"
echo "B: ${b[*]}"
echo "bytes: $(du -cbL "${files[@]}" | tail -1 | cut -f1); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
run "${a[@]}" >/dev/null # warm-up: page cache, binary
run "${b[@]}" >/dev/null
for ((i = 0; i < pairs; i++)); do
	ta=$(run "${a[@]}")
	tb=$(run "${b[@]}")
	echo "$ta $tb"
done >"$tmp/pairs"

# median of a sorted column; min and max
stats() { sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "median %.3f  min %.3f  max %.3f", m, v[1], v[NR] }'; }
echo "pairs: $pairs, in turn A B A B ..."
echo "A wall s    $(cut -d' ' -f1 "$tmp/pairs" | stats)"
echo "B wall s    $(cut -d' ' -f2 "$tmp/pairs" | stats)"
echo "A/B ratio   $(awk '{ printf "%.6f\n", $1 / $2 }' "$tmp/pairs" | stats)"
