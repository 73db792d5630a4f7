"""Runs the Python package's tests and ends with one line that
scripts/test's summary counts: `python: N passed, M failed`."""

import pathlib
import sys
import unittest

suite = unittest.defaultTestLoader.discover(str(pathlib.Path(__file__).parent))
result = unittest.TextTestRunner(verbosity=2).run(suite)
failed = len(result.failures) + len(result.errors)
print(f"python: {result.testsRun - failed} passed, {failed} failed")
sys.exit(0 if result.wasSuccessful() else 1)
