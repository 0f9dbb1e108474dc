#!/usr/bin/env bash
# symm info: text and JSON output, and exit code 2 with a one-line message on bad specs.
set -u
symm=$1
fail() { echo "FAIL: $*"; exit 1; }

out=$("$symm" info I --json) || fail "symm info I --json exited $?"
python3 - "$out" <<'PY' || fail "JSON of I"
import json, sys
d = json.loads(sys.argv[1])
assert set(d) == {"group", "order", "classes", "irreps"}, d.keys()
assert d["group"] == "I" and d["order"] == 60, d
assert [r["dim"] for r in d["irreps"]] == [1, 3, 3, 4, 5], d["irreps"]
assert all(r["type"] == "R" and len(r["character"]) == 60 and isinstance(r["id"], str) for r in d["irreps"])
assert sorted(x for c in d["classes"] for x in c) == list(range(60))
PY
out=$("$symm" info Q8 --json) || fail "symm info Q8 --json"
python3 - "$out" <<'PY' || fail "JSON of Q8"
import json, sys
d = json.loads(sys.argv[1])
assert [(r["dim"], r["type"]) for r in d["irreps"]] == [(1, "R")] * 4 + [(4, "H")], d["irreps"]
PY
"$symm" info D8 | grep -q "order 16" || fail "text info of D8"

for spec in C0 X7 Cabc D3x /nonexistent.json; do
  err=$("$symm" info "$spec" 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq 2 ] || fail "symm info $spec exited $rc, expected 2"
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "symm info $spec: expected one line, got: $err"
done
tmp=$(mktemp); echo '{"generators": [[[2,0],[0,1]]]}' > "$tmp"
"$symm" info "$tmp" 2>/dev/null; [ $? -eq 2 ] || fail "non-orthogonal generator file"
echo '{broken' > "$tmp"
"$symm" info "$tmp" 2>/dev/null; [ $? -eq 2 ] || fail "malformed JSON"
rm -f "$tmp"
"$symm" frobnicate 2>/dev/null; [ $? -eq 2 ] || fail "unknown subcommand"
echo "ok"
