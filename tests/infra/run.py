"""Runs every tests/infra/test_*.py and ends with one summary line,
"infra: N passed, N failed, N skipped".

Started by scripts/check-infra.sh inside .cache/manifest-venv; extra arguments select tests by name
pattern (unittest's -k), e.g. `scripts/check-infra.sh Checkov`.
"""

import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(patterns):
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    suite = loader.discover(start_dir=str(HERE), pattern="test_*.py", top_level_dir=str(HERE))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed_ids = {test.id() for test, _ in result.failures + result.errors}
    skipped = len(result.skipped)
    passed = result.testsRun - len(failed_ids) - skipped
    print(f"infra: {passed} passed, {len(failed_ids)} failed, {skipped} skipped")
    for test, reason in result.skipped:
        print(f"  skipped {test.id()}: {reason}")
    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
