"""The docstrings' back-links to the notebooks stay true.

A docstring line "Taught in: ``10_kernel_ablation``" or "Used in: notebooks 07–13" promises that those
notebooks use the documented function, class or module. Every such link is read from the source and checked
against the notebooks' ``.py`` twins: the notebook must import that very object (``from … import name``, or
``module.name`` of a module it imports); for a module, the module itself or something defined in it. A link
that names no notebook this test can check fails too: write it as ``NN_name`` or "notebooks NN–MM", or drop it.
"""
from __future__ import annotations

import ast
import importlib
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


def _resolve(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except AttributeError:
        return importlib.import_module(f"{module}.{name}")


def objects_used(source: str) -> list:
    """The dcft_edu objects a notebook imports: ``from dcft_edu… import x`` and ``alias.x`` of an imported module."""
    tree = ast.parse(source)
    out, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dcft_edu"):
            for a in node.names:
                out.append(obj := _resolve(node.module, a.name))
                if isinstance(obj, type(dcft_edu)):
                    modules[a.asname or a.name] = obj
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("dcft_edu"):
                    out.append(mod := importlib.import_module(a.name))
                    modules[a.asname or a.name] = mod
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            out.append(getattr(modules[node.value.id], node.attr, None))
    return out


def _uses(used: list, module: str, name: str | None) -> bool:
    if name is not None:  # a function or class: that very object
        target = getattr(importlib.import_module(module), name)
        return any(u is target for u in used)
    return any(getattr(u, "__name__", None) == module or getattr(u, "__module__", None) == module for u in used)


def backlinks() -> list[tuple[str, str, str | None, str]]:
    """(where, module, documented name or None for the module, notebook stem) for every link; a link that
    names no notebook comes back with stem ``""``."""
    links = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        module = ".".join(path.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        nodes = [(tree, None)] + [(n, n.name) for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        for node, name in nodes:
            for clause in LINK.findall(ast.get_docstring(node) or ""):
                where = f"{path.relative_to(PKG.parent)}: {name or 'module'}: {' '.join(clause.split())!r}"
                links += [(where, module, name, stem) for stem in sorted(notebooks_of(clause)) or [""]]
    return links


def test_notebooks_of_reads_names_and_ranges():
    assert notebooks_of("``07_glue_main_results`` (the table)") == {"07_glue_main_results"}
    assert {s[:2] for s in notebooks_of("notebooks 03, 05, 07–09")} == {"03", "05", "07", "08", "09"}
    assert notebooks_of("the README") == set()


def test_objects_used_tells_apart_names_from_different_modules():
    used = objects_used("from dcft_edu.figures.ablations import paper_table\n"
                        "import dcft_edu.dcft as d\nd.subspace_size(8, 2)")
    assert _uses(used, "dcft_edu.figures.ablations", "paper_table")
    assert not _uses(used, "dcft_edu.figures.main_results", "paper_table")  # same name, another function
    assert _uses(used, "dcft_edu.dcft", "subspace_size") and _uses(used, "dcft_edu.dcft", None)
    assert not _uses(used, "dcft_edu.lora", None)


def test_every_backlink_names_a_notebook_that_uses_it():
    links = backlinks()
    assert len(links) > 50  # the parser still finds them
    unchecked = [where for where, _, _, stem in links if not stem]
    assert not unchecked, ("back-links that name no notebook (write ``NN_name`` or notebooks NN–MM):\n"
                           + "\n".join(unchecked))
    used = {stem: objects_used(p.read_text()) for stem, p in NOTEBOOKS.items()}
    false = [f"{where} -> {stem}" for where, module, name, stem in links
             if stem not in used or not _uses(used[stem], module, name)]
    assert not false, "back-links to notebooks that do not use the documented object:\n" + "\n".join(false)
