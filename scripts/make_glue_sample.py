"""Cut the small GLUE sample that ships with the tests (``tests/data/glue_sample/``) from the full data.

    python scripts/make_glue_sample.py /path/to/glue_data          # or: DCFT_EDU_DATA=... python scripts/make_glue_sample.py

Each file is the first rows of GLUE's own file, copied byte for byte (the header line, if the file has one,
then the first ``ROWS[split]`` data lines), so the sample has every quirk of the full files: CoLA has no
header, MRPC starts with a UTF-8 BOM, SST-2 keeps the space before each tab. With quoting off, one line is one
row. ``tests/data/glue_sample/README.md`` says where the files come from and under which terms.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

#: data lines kept per split: at least what the ``quick`` preset and the tests read (160 train / 96 dev rows
#: in ``dcft_edu.experiments.presets``, 256 train rows in ``tests/test_trainer.py``)
ROWS = {"train": 300, "dev": 200}
#: GLUE folder -> whether its tsv files start with a header line
TASKS = {"CoLA": False, "SST-2": True, "MRPC": True, "STS-B": True, "RTE": True}
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "glue_sample"


def cut(src: Path, dst: Path, rows: int, header: bool) -> None:
    """The header (if any) and the first ``rows`` lines of ``src``, bytes unchanged, into ``dst``."""
    with open(src, "rb") as f:
        lines = [f.readline() for _ in range(rows + header)]
    if not lines[-1].endswith(b"\n"):
        raise ValueError(f"{src} has fewer than {rows} rows: point this script at GLUE's full data")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(b"".join(lines))


def main(argv: list[str]) -> int:
    root = argv[0] if argv else os.environ.get("DCFT_EDU_DATA")
    if not root:
        print("usage: python scripts/make_glue_sample.py GLUE_DATA_DIR  (or set DCFT_EDU_DATA)", file=sys.stderr)
        return 2
    for folder, header in TASKS.items():
        for split, rows in ROWS.items():
            cut(Path(root) / folder / f"{split}.tsv", OUT / folder / f"{split}.tsv", rows, header)
    print(f"wrote {len(TASKS) * len(ROWS)} files to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
