#!/usr/bin/env python3
"""Fails when a Swift file imports a synsight module that is not below its own.

The order is the data path (docs/architecture.md, "Modules and what depends on
what"): a module may import only modules earlier in LAYERS. SwiftPM already
refuses cycles between targets; this also catches a file importing a module
that its target reaches only transitively from above, and keeps the table in
the docs honest.
"""
import pathlib
import re
import sys

# Bottom first. Modules on one line are peers: neither may import the other.
LAYERS = [
    ["SynsightBase"],
    ["SynsightModel"],
    ["SynsightNftables"],
    ["SynsightAttribution", "SynsightRecording", "SynsightReport", "SynsightExplain",
     "SynsightKernel", "SynsightMetrics"],
    ["SynsightPipeline"],
    ["synsight", "SynsightFuzz"],
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
IMPORT = re.compile(r"^\s*(?:@testable\s+)?(?:public\s+|package\s+|internal\s+)?import\s+(\w+)", re.M)


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent / "Sources"
    bad = []
    for module, rank in RANK.items():
        for path in sorted((root / module).rglob("*.swift")):
            for imported in IMPORT.findall(path.read_text()):
                if imported in RANK and imported != module and RANK[imported] >= rank:
                    bad.append(f"{path.relative_to(root.parent)}: {module} imports {imported}, "
                               f"which is not below it (scripts/check-layers.py, docs/architecture.md)")
    missing = [d.name for d in root.iterdir()
               if d.is_dir() and d.name.startswith("Synsight") and d.name not in RANK]
    for name in missing:
        bad.append(f"Sources/{name}: a module scripts/check-layers.py does not place in a layer")
    print("\n".join(bad) if bad else f"check-layers: {len(RANK)} modules, every import points down")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
