#!/usr/bin/env bash
# Documentation that compiles: checks that <symm/symm.h> includes every public header, then builds every
# ```cpp block of README.md against an installed symm (find_package(symm), as examples/minimal does) and runs it.
#   scripts/check-docs.sh PREFIX [WORKDIR]   PREFIX: where symm is installed; WORKDIR: scratch (default build-docs)
# A block is a fragment: its #include and using-directive lines go to file scope, the rest into main().
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(realpath "${1:?usage: scripts/check-docs.sh PREFIX [WORKDIR]}")
work=${2:-build-docs}

missing=0
for h in $(cd include && find symm -name '*.h' ! -path symm/symm.h | sort); do
  grep -q "^#include \"$h\"" include/symm/symm.h || { echo "include/symm/symm.h does not include $h"; missing=1; }
done
[ "$missing" = 0 ] || exit 1

rm -rf "$work"
mkdir -p "$work/src"
count=$(awk -v dir="$work/src" '
  /^```cpp[[:space:]]*$/ { n++; inside = 1; head = dir "/snippet" n ".cpp"; body = ""; top = ""; next }
  inside && /^```/ {
    printf "// README.md, C++ block %d\n%s\nint main() {\n%s  return 0;\n}\n", n, top, body > head
    close(head); inside = 0; next }
  inside && (/^#include/ || /^using namespace/) { top = top $0 "\n"; next }
  inside { body = body "  " $0 "\n" }
  END { print n + 0 }' README.md)
[ "$count" -gt 0 ] || { echo "README.md has no C++ blocks"; exit 1; }
{
  echo 'cmake_minimum_required(VERSION 3.18)'
  echo 'project(symm_readme LANGUAGES CXX)'
  echo 'set(CMAKE_CXX_STANDARD 17)'
  echo 'find_package(symm REQUIRED)'
  for i in $(seq 1 "$count"); do
    echo "add_executable(snippet$i src/snippet$i.cpp)"
    echo "target_link_libraries(snippet$i PRIVATE symm::symm)"
  done
} > "$work/CMakeLists.txt"
cmake -S "$work" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" > "$work/configure.log" \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build"
for i in $(seq 1 "$count"); do
  echo "README C++ block $i:"
  (cd "$work/build" && "./snippet$i")
done
echo "README: $count C++ block(s) built and run against $prefix"
