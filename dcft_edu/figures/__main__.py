"""``python -m dcft_edu.figures [NAME ...]``: redraw the committed figures into ``figures/``."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import FIGURES, figures_dir, render


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dcft_edu.figures",
        description="Redraw the committed figures into figures/ (with DCFT_EDU_QUICK=1: into a temporary folder).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"figures to draw (default: all). Registered: {', '.join(FIGURES)}")
    parser.add_argument("--list", action="store_true", help="list the registered figures and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, fn in FIGURES.items():
            doc = (fn.__doc__ or "").strip().splitlines()
            print(f"{name}: {doc[0] if doc else fn.__name__}")
        return 0
    try:
        paths = render(args.names)
    except ValueError as e:
        parser.error(str(e))
    print(f"wrote {len(paths)} files to {figures_dir()}:")
    for p in paths:
        print(f"  {p.name}")
    return 0


if __name__ == "__main__":
    from ..experiments.cli import run_cli

    sys.exit(run_cli(main))
