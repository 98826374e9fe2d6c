#!/usr/bin/env python3
"""`make bench`: run the benchmarks in bench/, one module per concern.

    python bench/run.py                 # every benchmark
    python bench/run.py gateway         # just bench/gateway.py
    python bench/run.py gateway -- --duration 3 --rounds 1

A benchmark is a module ``bench/<name>.py`` with ``main(argv) -> int``; add a
file and it is picked up.  Results go to stdout and var/bench/<name>.json.
"""

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def benchmarks():
    found = {}
    for path in sorted(HERE.glob("*.py")):
        if path.name in ("run.py", "__init__.py") or path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if callable(getattr(module, "main", None)):
            found[path.stem] = module
    return found


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    found = benchmarks()
    if argv in (["--list"], ["-l"]):
        print("\n".join(found))
        return 0
    names = argv or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have: {', '.join(found)}", file=sys.stderr)
        return 2
    code = 0
    for name in names:
        print(f"== bench {name} ==", flush=True)
        code = found[name].main(extra) or code
    return code


if __name__ == "__main__":
    sys.exit(main())
