"""Root conftest: loaded for every test path (tests/ and the nbval notebooks).

Where the GLUE data is: ``DCFT_EDU_DATA`` if set (made absolute: nbval's kernels run inside ``notebooks/`` and
inherit this process's environment), else the small sample shipped in ``tests/data/glue_sample`` (the first
rows of each file), so the README's test command runs offline on a fresh clone. Tests marked ``full_data``
(row and label counts of the real files …) run only when ``DCFT_EDU_DATA`` names the full data sets.
"""
import os
from pathlib import Path

import pytest

GLUE_SAMPLE = Path(__file__).resolve().parent / "tests" / "data" / "glue_sample"

if os.environ.get("DCFT_EDU_DATA"):
    os.environ["DCFT_EDU_DATA"] = str(Path(os.environ["DCFT_EDU_DATA"]).expanduser().resolve())
else:
    os.environ["DCFT_EDU_DATA"] = str(GLUE_SAMPLE)
FULL_DATA = Path(os.environ["DCFT_EDU_DATA"]) != GLUE_SAMPLE

#: under pytest-xdist (``-n 2``, pyproject's addopts): each worker process, and every notebook kernel and subprocess
#: it starts, computes on one thread, so two workers share a 2-core machine instead of oversubscribing it
if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: only called when it runs the tests (-n 2)
def pytest_xdist_make_scheduler(config, log):
    """Under ``-n 2`` (pyproject's addopts): a notebook's cells go together to one worker, in order (they share one
    kernel); every other test is scheduled on its own. xdist sends the biggest groups (the notebooks) first and
    the short tests last, so the two workers finish together. ``--dist`` other than ``load`` keeps xdist's own."""
    if config.getoption("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.endswith(".ipynb") else nodeid

    return NotebookScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    if FULL_DATA:
        return
    skip = pytest.mark.skip(reason=f"needs GLUE's full data sets; the tests read the sample in {GLUE_SAMPLE}: "
                                   "set DCFT_EDU_DATA to the full data (README, Quick start)")
    for item in items:
        if "full_data" in item.keywords:
            item.add_marker(skip)
