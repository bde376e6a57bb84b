#!/usr/bin/env python3
"""Validates JSON Lines records against the published contract,
docs/schema/synsight-record-v1.schema.json, with check-jsonschema (installed
in .venv-tests by scripts/install-deps.sh).

    check-records.py [--schema FILE] [--check-jsonschema EXE] FILE.jsonl[.gz]... | -

check-jsonschema reads JSON, not JSON Lines: the records of all files become
one JSON array, validated in one run (its start-up costs ~0.5 s) against a
wrapper schema whose items are the record schema. Each error is printed with
the file and line of the record, the record itself and the schema's message.
Exit status: 0 all valid (or no records), 1 a record is invalid or not JSON,
2 usage or tool failure.
"""
import argparse, gzip, json, os, re, subprocess, sys, tempfile

SHOWN = 20  # invalid records printed in full; the rest are counted
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_records(paths):
    """[(origin, line text, parsed or None)] for every non-empty line."""
    out = []
    for p in paths:
        if p == "-":
            lines = sys.stdin.read().splitlines()
        else:
            opener = gzip.open if p.endswith(".gz") else open
            with opener(p, "rt", encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        for n, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except ValueError as e:
                value, text = None, f"{text}\n    not JSON: {e}"
            out.append((f"{p}:{n}", text, value))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schema", default=os.path.join(ROOT, "docs/schema/synsight-record-v1.schema.json"))
    ap.add_argument("--check-jsonschema", dest="tool",
                    default=os.path.join(ROOT, ".venv-tests/bin/check-jsonschema"))
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    if not os.access(a.tool, os.X_OK):
        print(f"check-records: {a.tool} not found: run scripts/install-deps.sh", file=sys.stderr)
        return 2
    records = read_records(a.files)
    bad = [r for r in records if r[2] is None]
    for origin, text, _ in bad:
        print(f"{origin}: {text}", file=sys.stderr)
    valid = [r for r in records if r[2] is not None]
    if not valid:
        return 1 if bad else 0
    with open(a.schema) as f:
        schema = json.load(f)
    wrapper = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "array",
               "items": {"$ref": schema["$id"]}, "$defs": {"record": schema}}
    with tempfile.TemporaryDirectory(prefix="synsight-check-records.") as d:
        schema_path, data_path = os.path.join(d, "schema.json"), os.path.join(d, "records.json")
        with open(schema_path, "w") as f:
            json.dump(wrapper, f)
        with open(data_path, "w") as f:
            json.dump([r[2] for r in valid], f)
        p = subprocess.run([a.tool, "--output-format", "text", "--schemafile", schema_path, data_path],
                           capture_output=True, text=True)
    if p.returncode == 0:
        if not bad:
            print(f"check-records: {len(valid)} record{'s' if len(valid) != 1 else ''} valid against {os.path.relpath(a.schema, ROOT)}")
        return 1 if bad else 0
    # Lines like "  <path>::$[12].evidence: 'method' is a required property".
    errors = {}
    for line in p.stdout.splitlines() + p.stderr.splitlines():
        m = re.search(r"::\$\[(\d+)\]([^:]*): (.*)", line)
        if m:
            errors.setdefault(int(m.group(1)), []).append(f"${m.group(2)}: {m.group(3)}")
    if not errors:
        print(f"check-records: check-jsonschema failed (exit {p.returncode}):\n{p.stdout}{p.stderr}", file=sys.stderr)
        return 2
    for i, msgs in sorted(errors.items())[:SHOWN]:
        origin, text, _ = valid[i]
        print(f"{origin}: record does not match {os.path.relpath(a.schema, ROOT)}:\n  {text}", file=sys.stderr)
        for msg in msgs:
            print(f"    {msg if len(msg) <= 300 else msg[:300] + '...'}", file=sys.stderr)
    more = f" ({len(errors) - SHOWN} more not shown)" if len(errors) > SHOWN else ""
    print(f"check-records: {len(errors)} of {len(valid)} records invalid{more}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
