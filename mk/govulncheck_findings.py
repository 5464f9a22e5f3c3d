"""Print the OSV ids of govulncheck -format json findings in called code."""
import json
import sys

text = open(sys.argv[1]).read()
dec = json.JSONDecoder()
i, ids = 0, set()
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    obj, i = dec.raw_decode(text, i)
    f = obj.get("finding")
    # A finding whose innermost frame names a function is in called code.
    if f and f.get("trace") and f["trace"][0].get("function"):
        ids.add(f["osv"])
print("\n".join(sorted(ids)))
