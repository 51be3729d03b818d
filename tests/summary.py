"""summary.py: the suite's last line, "N passed, N failed", from meson's log.

Counts test cases, not just test programs: a Python end-to-end file prints
"cases: P passed, F failed, S skipped" and a cmocka program prints
"[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)" per group; a program that failed
without saying how many cases failed (a crash, a timeout, a sanitizer
report) counts as one more failure. With --leaked N (scripts/test.sh: the
containerds tests left running), one more case: no leak, or a failure.
Exits 1 if anything failed or nothing ran.
"""

import json
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


def main(path, leaked=None):
    passed = failed = skipped = 0
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            p, fl, s = counts(entry)
            if entry["result"] not in ("OK", "EXPECTEDFAIL", "SKIP") and fl == 0:
                fl = 1  # the program failed although its cases did not say so
            print("%-24s %-8s %d passed, %d failed" % (entry["name"], entry["result"], p, fl))
            passed, failed, skipped = passed + p, failed + fl, skipped + s
    if leaked is not None:
        ok = leaked == 0
        print("%-24s %-8s %d passed, %d failed" % ("no-leaked-containerd", "OK" if ok else "FAIL",
                                                    int(ok), int(not ok)))
        passed, failed = passed + int(ok), failed + int(not ok)
    line = "%d passed, %d failed" % (passed, failed)
    print(line + (", %d skipped" % skipped if skipped else ""))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    args = sys.argv[1:]
    leaked = None
    if len(args) == 3 and args[1] == "--leaked":
        leaked = int(args[2])
    sys.exit(main(args[0], leaked))
