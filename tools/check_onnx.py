#!/usr/bin/python3
"""Runs onnx.checker.check_model(full_check=True) on every .onnx file given.

Usage: /usr/bin/python3 tools/check_onnx.py FILE_OR_DIR...
Prints one line per file ("ok <path>" or "FAIL <path>: <reason>") and exits 1
when any file fails. Needs Debian's python3-onnx (onnx 1.12); not needed by the
tests, which skip the check when it is absent.
"""
import os
import sys

import onnx


def files(args):
    for arg in args:
        if os.path.isdir(arg):
            for root, _, names in os.walk(arg):
                for name in sorted(names):
                    if name.endswith(".onnx"):
                        yield os.path.join(root, name)
        else:
            yield arg


def main():
    failed = 0
    for path in files(sys.argv[1:]):
        try:
            model = onnx.load(path)
            onnx.checker.check_model(model, full_check=True)
            print(f"ok {path}")
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
