"""Runs every tests/azure/test_*.py and ends with one summary line, "azure: N passed, N failed".

Started by scripts/check-azure.sh inside .cache/azure-venv; extra arguments select tests by
name pattern (unittest's -k), e.g. `scripts/check-azure.sh DeployAml`.
"""

import sys
import unittest
import warnings
from pathlib import Path

from marshmallow.warnings import Marshmallow4Warning

HERE = Path(__file__).resolve().parent

# azure-ai-ml's schema classes announce marshmallow 4 API changes on import; noise here (the YAML
# checks in test_yaml.py record warnings themselves and judge them).
warnings.filterwarnings("ignore", category=Marshmallow4Warning)


def main(patterns):
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    suite = loader.discover(start_dir=str(HERE), pattern="test_*.py", top_level_dir=str(HERE))
    result = unittest.TextTestRunner(verbosity=2, warnings=None).run(suite)
    failed_ids = {test.id() for test, _ in result.failures + result.errors}
    failed = len(failed_ids) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.testsRun - len(failed_ids) - skipped - len(result.unexpectedSuccesses)
    print(f"azure: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if result.wasSuccessful() and result.testsRun > 0 and skipped == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
