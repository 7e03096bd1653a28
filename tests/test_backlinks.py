"""The docstrings' back-links to the notebooks stay true.

A docstring line "Taught in: ``10_kernel_ablation``" or "Used in: notebooks 07–13" promises that those
notebooks use the documented function (or class, or module). Every such link is read from the source and
checked against the notebooks' ``.py`` twins: a function or class must be named there (imported, called or
read as an attribute); a module must be imported, or one of its names. A link that names no notebook this
test can check fails too: write it as ``NN_name`` or "notebooks NN–MM", or leave it out.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import dcft_edu

PKG = Path(dcft_edu.__file__).resolve().parent
NOTEBOOKS = {p.stem: p for p in sorted((PKG.parent / "notebooks").glob("[0-9][0-9]_*.py"))}
#: "Taught in:" / "Used in:" up to the end of its paragraph, or to a "; used by …" clause that follows it
LINK = re.compile(r"(?:taught|used) in:?\s(.*?)(?=\n\s*\n|;|\Z)", re.IGNORECASE | re.DOTALL)
NAMED = re.compile(r"``(\d\d_\w+)``")
RANGES = re.compile(r"notebooks? (\d\d(?:–\d\d)?(?:(?:, | and )\d\d(?:–\d\d)?)*)")


def notebooks_of(clause: str) -> set[str]:
    """The notebook stems a link clause names: ``NN_name`` and "notebooks 03, 05, 07–13"."""
    stems = set(NAMED.findall(clause))
    for spec in RANGES.findall(clause):
        for part in re.split(r", | and ", spec):
            lo, _, hi = part.partition("–")
            for n in range(int(lo), int(hi or lo) + 1):
                stems |= {s for s in NOTEBOOKS if s.startswith(f"{n:02d}_")} or {f"{n:02d}_<missing>"}
    return stems


def names_used(tree: ast.AST) -> set[str]:
    """Every name a notebook imports, reads or reads as an attribute, and every dcft_edu module it imports."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add(node.module or "")
            out |= {a.name for a in node.names} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def backlinks() -> list[tuple[str, set[str], str]]:
    """(where, the names that count as using the documented object, the notebook stem) for every link; a link
    that names no notebook comes back with stem ``""``."""
    links = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        module = ".".join(path.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))
               and not n.name.startswith("_") and n.name != "main"}
        nodes = [(tree, module, {module} | top)]  # a module counts as used when it or one of its names is imported
        nodes += [(n, n.name, {n.name}) for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        for node, what, uses in nodes:
            for clause in LINK.findall(ast.get_docstring(node) or ""):
                where = f"{path.relative_to(PKG.parent)}: {what}: {' '.join(clause.split())!r}"
                links += [(where, uses, stem) for stem in sorted(notebooks_of(clause)) or [""]]
    return links


def test_notebooks_of_reads_names_and_ranges():
    assert notebooks_of("``07_glue_main_results`` (the table)") == {"07_glue_main_results"}
    assert {s[:2] for s in notebooks_of("notebooks 03, 05, 07–09")} == {"03", "05", "07", "08", "09"}
    assert notebooks_of("the README") == set()


def test_every_backlink_names_a_notebook_that_uses_it():
    links = backlinks()
    assert len(links) > 50  # the parser still finds them
    used = {stem: names_used(ast.parse(p.read_text())) for stem, p in NOTEBOOKS.items()}
    unchecked = [where for where, _, stem in links if not stem]
    assert not unchecked, "back-links that name no notebook (write ``NN_name`` or notebooks NN–MM):\n" + "\n".join(unchecked)
    false = [f"{where} -> {stem}" for where, uses, stem in links if not uses & used.get(stem, set())]
    assert not false, "back-links to notebooks that do not use the documented object:\n" + "\n".join(false)
