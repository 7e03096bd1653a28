"""The labs' quizzes (``docs/quizzes/labN.yaml``): every answer is computed again from the library.

Each question carries its ``answer`` and a ``check``: Python that computes the same thing with the package (after
the file's ``setup``) into a variable ``answer``. The test runs every check and compares, so an answer stays true
as the library changes, the way the exercises' solutions notebooks assert theirs. Floats compare within the
question's ``tolerance`` (default 1e-9, relative); lists element by element.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
QUIZ_DIR = ROOT / "docs" / "quizzes"
QUIZZES = sorted(QUIZ_DIR.glob("lab*.yaml"))
FIELDS = {"question", "answer", "why", "check"}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def syllabus_labs() -> dict[int, list[str]]:
    """{lab: the two-digit notebook numbers its row of notebooks/README.md names}."""
    labs = {}
    for line in (ROOT / "notebooks" / "README.md").read_text().splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|\s*([^|]+)\|", line)
        if m:
            labs[int(m.group(1))] = re.findall(r"\b(\d\d)\b", m.group(2))
    return labs


def same(got, expected, tol: float) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(got) is bool and got == expected
    if isinstance(expected, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(expected) and \
            all(same(g, e, tol) for g, e in zip(got, expected))
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            got = float(got)
        except (TypeError, ValueError):
            return False
        return math.isclose(got, expected, rel_tol=tol, abs_tol=tol)
    return got == expected


def test_one_quiz_per_lab_of_the_syllabus():
    labs = syllabus_labs()
    assert sorted(labs) == list(range(1, len(labs) + 1)) and len(labs) >= 9, "notebooks/README.md: the labs table"
    assert [load(p)["lab"] for p in QUIZZES] == sorted(labs), "one docs/quizzes/labN.yaml per lab of the syllabus"
    for path in QUIZZES:
        quiz = load(path)
        numbers = sorted(n[:2] for n in quiz["notebooks"])
        assert numbers == sorted(labs[quiz["lab"]]), f"{path.name}: its notebooks differ from the syllabus' lab {quiz['lab']}"
        for nb in quiz["notebooks"]:
            assert (ROOT / "notebooks" / f"{nb}.ipynb").is_file(), f"{path.name}: no notebook {nb}"
        assert 4 <= len(quiz["questions"]) <= 8, f"{path.name}: a short quiz has 4–8 questions"
        for q in quiz["questions"]:
            assert FIELDS <= set(q), f"{path.name}: {q.get('question', q)!r} lacks {sorted(FIELDS - set(q))}"


CASES = [(p, i) for p in QUIZZES for i in range(len(load(p)["questions"]))]


@pytest.fixture(scope="module")
def setups():
    """Each quiz's namespace after its ``setup`` ran once."""
    cache = {}

    def get(path: Path) -> dict:
        if path not in cache:
            ns: dict = {}
            exec(compile(load(path).get("setup", ""), f"{path.name}:setup", "exec"), ns)
            cache[path] = ns
        return cache[path]
    return get


@pytest.mark.parametrize("path, i", CASES, ids=[f"{p.stem}-q{i + 1}" for p, i in CASES])
def test_every_answer_is_what_the_library_computes(path, i, setups):
    q = load(path)["questions"][i]
    ns = dict(setups(path))
    exec(compile(q["check"], f"{path.name}:q{i + 1}", "exec"), ns)
    assert "answer" in ns, f"{path.name} q{i + 1}: its check must set `answer`"
    got = ns["answer"]
    assert same(got, q["answer"], q.get("tolerance", 1e-9)), \
        f"{path.name} q{i + 1} {q['question']!r}: the quiz says {q['answer']!r}, the library computes {got!r}"
