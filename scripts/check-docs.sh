#!/usr/bin/env bash
# Documentation that runs: checks that <symm/symm.h> includes every public header, then builds every ```cpp
# block of README.md and docs/*.md against an installed symm (find_package(symm), as examples/minimal does) and
# runs it, and runs every ```python block with the Python of an environment where the package is installed.
#   scripts/check-docs.sh PREFIX [WORKDIR] [VENV]
#     PREFIX   where symm is installed; WORKDIR: scratch (default build-docs)
#     VENV     a virtual environment with the package installed (scripts/test-python.sh leaves build-python/venv);
#              without it the Python blocks are counted but not run, and the script says so
# A C++ block is a fragment: its #include lines go to file scope, the rest into a function of its own (below).
# A Python block is a whole program, run in a scratch folder outside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(realpath "${1:?usage: scripts/check-docs.sh PREFIX [WORKDIR] [VENV]}")
work=$(realpath -m "${2:-build-docs}")
venv=${3:+$(realpath "$3")}  # absolute: the Python blocks run from the scratch folder

missing=0
for h in $(cd include && find symm -name '*.h' ! -path symm/symm.h | sort); do
  grep -q "^#include \"$h\"" include/symm/symm.h || { echo "include/symm/symm.h does not include $h"; missing=1; }
done
[ "$missing" = 0 ] || exit 1

rm -rf "$work"
mkdir -p "$work/py"
docs=(README.md $(ls docs/*.md 2>/dev/null | sort))
# The C++ blocks become one program, src/blocks.cpp, compiled as one unit (each block alone took as long as all
# together: LibTorch's headers and templates): every block's #include lines at file scope, and each block in a
# namespace of its own, its using-directives there and the rest in that namespace's run(), which main() calls
# in order (a block's nonzero return ends the program with it). Each Python block becomes py/snippetN.py. Each names the file and block it came from.
awk -v dir="$work" '
  FNR == 1 { block = 0 }
  /^```(cpp|python)[[:space:]]*$/ { lang = ($0 ~ /cpp/) ? "cpp" : "python"; block++; inside = 1; body = ""; top = ""; next }
  inside && /^```/ {
    inside = 0
    if (lang == "cpp") {
      n++
      code = code sprintf("namespace block%d {  // %s, block %d\n%sint run() {\n%s  return 0;\n}\n}  // namespace block%d\n\n",
                          n, FILENAME, block, top, body, n)
      calls = calls sprintf("  std::cout << \"%s, block %d (C++):\" << std::endl;\n  if (const int rc = block%d::run()) return rc;\n",
                            FILENAME, block, n)
    } else {
      p++; f = dir "/py/snippet" p ".py"
      printf "# %s, block %d\n%s", FILENAME, block, body > f
      close(f)
    }
    next }
  inside && lang == "cpp" && /^#include/ { if (!($0 in included)) { included[$0] = 1; includes = includes $0 "\n" }; next }
  inside && lang == "cpp" && /^using namespace/ { top = top $0 "\n"; next }
  inside && lang == "cpp" { body = body "  " $0 "\n"; next }
  inside { body = body $0 "\n" }
  END {
    if (n == 0) exit
    f = dir "/src/blocks.cpp"
    system("mkdir -p " dir "/src")
    printf "%s#include <iostream>\n\n%sint main() {\n%s  return 0;\n}\n", includes, code, calls > f
    print n > (dir "/cpp-count")
  }' "${docs[@]}"
[ -f "$work/cpp-count" ] || { echo "README.md and docs/ have no C++ blocks"; exit 1; }
cpp=$(cat "$work/cpp-count") py=$(ls "$work/py" | wc -l)
cat > "$work/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(symm_docs LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(symm REQUIRED)
add_executable(blocks src/blocks.cpp)
target_link_libraries(blocks PRIVATE symm::symm)
CMAKE
cmake -S "$work" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" > "$work/configure.log" \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build"
(cd "$work/build" && ./blocks)
echo "docs: $cpp C++ block(s) built and run against $prefix"

if [ -z "$venv" ]; then
  echo "docs: $py Python block(s) NOT run (no environment given)"
  exit 0
fi
for i in $(seq 1 "$py"); do
  echo "$(head -n 1 "$work/py/snippet$i.py" | cut -c3-) (Python):"
  (cd "$work/py" && "$venv/bin/python" "snippet$i.py")
done
echo "docs: $py Python block(s) run with $venv/bin/python"
