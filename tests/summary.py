# SPDX-License-Identifier: Apache-2.0
"""summary.py: the suite's last line, "N passed, N failed", from meson's log.

Counts test cases, not just test programs: a Python end-to-end file prints
"cases: P passed, F failed, S skipped" and a cmocka program prints
"[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" per group; a program that failed
without saying how many cases failed (a crash, a timeout, a sanitizer
report) counts as one more failure. With --leaked N (scripts/test.sh: the
containerds tests left running), one more case: no leak, or a failure.
With --case NAME RC (any number of times), one more case each, passed when
the exit code RC is 0 (scripts/test.sh: lint-format, lint-tidy).
With --log PREFIX LOG (any number of times), the tests of another meson log
count too, named PREFIX + suite-name ("tsan/unit-store", "tsan/e2e-hooks";
a name that starts with its suite keeps it once: "fuzz-merge"), e.g. the
ThreadSanitizer build's and the fuzz targets' (one case each). A log that is
missing counts as a failure.
Exits 1 if anything failed or nothing ran.

  summary.py LOG [--log PREFIX LOG]... [--leaked N] [--case NAME RC]...
"""

import json
import os
import re
import sys

CASES = re.compile(r"^cases: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?", re.M)
CMOCKA_PASSED = re.compile(r"^\[  PASSED  \] (\d+) test", re.M)
CMOCKA_FAILED = re.compile(r"^\[  FAILED  \] (\d+) test", re.M)


def counts(entry):
    out = (entry.get("stdout", "") or "") + "\n" + (entry.get("stderr", "") or "")
    m = CASES.findall(out)
    if m:
        p, f, s = m[-1]
        return int(p), int(f), int(s or 0)
    passed = CMOCKA_PASSED.findall(out)
    if passed:
        failed = CMOCKA_FAILED.findall(out)
        # one line per cmocka group: add them up
        return sum(map(int, passed)), sum(map(int, failed)), 0
    if entry["result"] == "SKIP":
        return 0, 0, 1
    return (1, 0, 0) if entry["result"] in ("OK", "EXPECTEDFAIL") else (0, 1, 0)


def display_name(entry, prefix):
    """The main log's names as meson gives them; others as PREFIX + suite-name."""
    if prefix is None:
        return entry["name"]
    head, _, name = entry["name"].rpartition(" / ")  # "crihook:unit / store"
    suite = head.split(":", 1)[-1].split("+")[0]
    if suite and not name.startswith(suite + "-"):
        name = suite + "-" + name
    return prefix + name


def row(name, result, p, f):
    print("%-28s %-8s %d passed, %d failed" % (name, result, p, f))


def read_log(path, prefix):
    """(passed, failed, skipped) of one meson log, printing a row per test."""
    passed = failed = skipped = 0
    try:
        f = open(path)
    except OSError as e:
        row((prefix or "") + os.path.basename(path), "MISSING", 0, 1)
        print("  %s" % e)
        return 0, 1, 0
    with f:
        for line in f:
            entry = json.loads(line)
            p, fl, s = counts(entry)
            if entry["result"] not in ("OK", "EXPECTEDFAIL", "SKIP") and fl == 0:
                fl = 1  # the program failed although its cases did not say so
            row(display_name(entry, prefix), entry["result"], p, fl)
            passed, failed, skipped = passed + p, failed + fl, skipped + s
    return passed, failed, skipped


def main(logs, leaked=None, cases=()):
    passed = failed = skipped = 0
    for prefix, path in logs:
        p, f, s = read_log(path, prefix)
        passed, failed, skipped = passed + p, failed + f, skipped + s
    for name, rc in cases:
        ok = rc == 0
        row(name, "OK" if ok else "FAIL", int(ok), int(not ok))
        passed, failed = passed + int(ok), failed + int(not ok)
    if leaked is not None:
        ok = leaked == 0
        row("no-leaked-containerd", "OK" if ok else "FAIL", int(ok), int(not ok))
        passed, failed = passed + int(ok), failed + int(not ok)
    line = "%d passed, %d failed" % (passed, failed)
    print(line + (", %d skipped" % skipped if skipped else ""))
    return 1 if failed or passed == 0 else 0


USAGE = "usage: summary.py LOG [--log PREFIX LOG]... [--leaked N] [--case NAME RC]..."


def parse_args(args):
    if not args:
        sys.exit(USAGE)
    logs, leaked, cases, i = [(None, args[0])], None, [], 1
    while i < len(args):
        if args[i] == "--leaked" and i + 1 < len(args):
            leaked, i = int(args[i + 1]), i + 2
        elif args[i] == "--log" and i + 2 < len(args):
            logs.append((args[i + 1], args[i + 2]))
            i += 3
        elif args[i] == "--case" and i + 2 < len(args) and args[i + 2].isdigit():
            cases.append((args[i + 1], int(args[i + 2])))
            i += 3
        else:
            sys.exit(USAGE)
    return logs, leaked, cases


if __name__ == "__main__":
    sys.exit(main(*parse_args(sys.argv[1:])))
