"""The routing building blocks the hot path imports must not pull in Django."""

import subprocess
import sys

from tests.environment import ROOT

PURE = ("routing.table", "routing.router", "routing.features", "routing.rules", "routing.stats",
        "routing.strategies", "routing.planner")


def test_the_pure_modules_import_without_django():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE)
            + "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
              "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
