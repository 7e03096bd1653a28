"""Probe the experiment engine (CLIs, run fields, sweeps, readers, E2E) with issue 29's cases: one line each.

    PYTHONPATH=$PWD python scripts/probe_engine.py             # every case, then the counts
    PYTHONPATH=$PWD python scripts/probe_engine.py -k sweep    # only the cases whose name holds "sweep"

Each case is a shell one-liner (printed with ``--show``, to paste into a terminal) run in a scratch folder
with the shipped GLUE sample, a few rows and one epoch, so the whole probe trains only a handful of tiny
runs. Outcomes:

- OK: refused before the work, one line on stderr, no traceback, a non-zero exit (130 for SIGINT);
- SILENT: accepted (exit 0, no error): a wrong result, a duplicate, or work lost;
- WRONG-EXIT: the run said something but exited 0 (or not 130 on SIGINT);
- TRACEBACK: a raw Python traceback reached the user;
- LATE: refused, but only after the training it could have saved.

The API cases print ``SILENT`` themselves when a call that should refuse returns. This is a checklist for the
engine-side phase of issue 29; the core's own cases are ``scripts/probe_core.py``.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SMALL = "--limit-train 8 --limit-dev 8 --max-length 32 --epochs 1 --batch-size 4 --no-progress"
SET_SMALL = "--set limit_train=8 --set limit_dev=8 --set max_length=32 --set epochs=1 --set batch_size=4"
GRID1 = '{"task": ["rte"], "method": ["lora"], "seed": [0]}'
GRID3 = '{"task": ["rte"], "method": ["lora"], "seed": [0, 1, 2]}'


def api(code: str) -> str:
    """A python -c one-liner that prints SILENT if ``code`` returns (a refusal is a ValueError: OK for an API)."""
    return f'{PY} -c "from dcft_edu.experiments.presets import make_run; {code}; print(\'SILENT\')"'


CASES: list[tuple[str, str, str]] = [
    # (name, issue class, shell command); {S} is the scratch folder
    # ---- run fields where they enter: make_run, --set, grid files, CLI flags
    *[(f"make_run {f}", "silent: run field", api(f"make_run('rte', 'lora', {f})")) for f in (
        "lr=-1e-3", "lr=float('nan')", "weight_decay=-0.1", "weight_decay=float('nan')", "max_grad_norm=-1.0",
        "max_grad_norm=float('nan')", "warmup_steps=-5", "orth_gamma=float('nan')", "orth_gamma=-1.0",
        "device='cdua'", "save_delta='layer.0.attention.self.qurey'")],
    ("train --weight-decay -1 (a CLI flag)", "silent: run field",
     f"{PY} -m dcft_edu.experiments.train --task rte --method lora --weight-decay -1 {SMALL} --out {{S}}/wd.json"),
    ("sweep --set lr=-1 --dry-run", "silent/wrong exit: --set, dry-run lists invalid runs",
     f"{PY} -m dcft_edu.experiments.sweep {{S}}/g1.json --results {{S}}/res --set lr=-1 --dry-run"),
    ("sweep grid file with lr -1 --dry-run", "silent/wrong exit: grid file",
     f"echo '{{\"task\": [\"rte\"], \"method\": [\"lora\"], \"lr\": [-1]}}' > {{S}}/neg.json && "
     f"{PY} -m dcft_edu.experiments.sweep {{S}}/neg.json --results {{S}}/res --dry-run"),
    ("grid with repeated seeds", "silent: duplicate runs",
     f"{PY} -c \"from dcft_edu.experiments.sweep import grid_runs; rs = grid_runs({{'task': ['rte'], 'method': "
     "['lora'], 'seed': [0, 0]}); print('SILENT' if len({r.key() for r in rs}) < len(rs) else 'OK', len(rs), 'runs')\""),
    ("--set seed=5 on a 3-seed grid", "silent: duplicate runs",
     f"{PY} -m dcft_edu.experiments.sweep {{S}}/g3.json --results {{S}}/res --set seed=5 --dry-run"),
    # ---- readers
    ("load_results on a missing folder", "silent: reader",
     f"{PY} -c \"from dcft_edu.experiments.sweep import load_results; df = load_results('{{S}}/nope'); "
     "print('SILENT', len(df), 'rows')\""),
    ("a header-only TSV read as 0 rows", "silent: reader",
     f"mkdir -p {{S}}/hdr/RTE && head -1 tests/data/glue_sample/RTE/train.tsv > {{S}}/hdr/RTE/train.tsv && "
     f"{PY} -c \"from dcft_edu.experiments.data import load_glue; d = load_glue('rte', 'train', root='{{S}}/hdr'); "
     "print('SILENT', len(d), 'rows')\""),
    ("train with an empty dev set", "traceback",
     f"mkdir -p {{S}}/emp/RTE && cp tests/data/glue_sample/RTE/train.tsv {{S}}/emp/RTE/ && "
     f"head -1 tests/data/glue_sample/RTE/dev.tsv > {{S}}/emp/RTE/dev.tsv && DCFT_EDU_DATA={{S}}/emp "
     f"{PY} -m dcft_edu.experiments.train --task rte --method lora --limit-train 8 --max-length 32 --no-progress"),
    ("train on a non-UTF-8 TSV", "traceback",
     f"mkdir -p {{S}}/lat/RTE && cp tests/data/glue_sample/RTE/dev.tsv {{S}}/lat/RTE/ && "
     f"(head -1 tests/data/glue_sample/RTE/train.tsv; printf '0\\tcaf\\351\\tb\\tentailment\\n') > {{S}}/lat/RTE/train.tsv"
     f" && DCFT_EDU_DATA={{S}}/lat {PY} -m dcft_edu.experiments.train --task rte --method lora {SMALL}"),
    ("sweep on a non-UTF-8 grid file", "traceback",
     f"printf '{{\"task\": [\"r\\351te\"]}}' > {{S}}/bad.json && {PY} -m dcft_edu.experiments.sweep {{S}}/bad.json "
     f"--results {{S}}/res --dry-run"),
    ("sweep on a grid that is a JSON string", "traceback",
     f"echo '\"rte\"' > {{S}}/str.json && {PY} -m dcft_edu.experiments.sweep {{S}}/str.json --results {{S}}/res --dry-run"),
    ("sweep on an empty grid", "wrong exit",
     f"echo '[]' > {{S}}/empty.json && {PY} -m dcft_edu.experiments.sweep {{S}}/empty.json --results {{S}}/res"),
    ("sweep --deadline-min -1", "wrong exit",
     f"{PY} -m dcft_edu.experiments.sweep {{S}}/g1.json --results {{S}}/dl {SET_SMALL} --deadline-min -1"),
    ("sweep --deadline-min 0 (read as: none)", "wrong exit",
     f"{PY} -m dcft_edu.experiments.sweep {{S}}/g1.json --results {{S}}/dl0 {SET_SMALL} --deadline-min 0"),
    # ---- devices, benchmarks, Colab
    ("train --device cuda without CUDA", "traceback",
     f"{PY} -m dcft_edu.experiments.train --task rte --method lora --device cuda {SMALL}"),
    *[(f"bench train {flag}", "traceback",
       f"{PY} -m dcft_edu.experiments.bench train --methods lora --no-memory --rounds 1 --steps 1 --batch-size 2 "
       f"--max-length 16 {flag}") for flag in ("--steps 0", "--batch-size 0", "--rounds 0")],
    ("Colab bootstrap with an unreachable repo URL", "traceback",
     f"DCFT_EDU_REPO_URL={{S}}/no-such-repo {PY} -c \"from dcft_edu.experiments.colab import bootstrap; "
     f"bootstrap('{{S}}/clone', force=True)\""),
    # ---- E2E
    ("E2E: a NaN-loss run is saved as a result", "silent: E2E guards",
     f"{PY} -c \"from dcft_edu.experiments import e2e; from dcft_edu.experiments.causal_lm import tiny_causal_lm; "
     "import json; m, t = tiny_causal_lm(); pairs = [('name[x] ||', ' x is a pub.')] * 32; "
     "data = (pairs, ['name[x]'], [['x is a pub.']]); r = e2e.make_e2e_run('lora', 'quick', 0, lr=1e30, "
     "max_new_tokens=2); p = e2e.train_and_save(r, '{S}/e2e', (m, t), log=lambda s: None, data=data, meteor=False, "
     "model_name='tiny'); rec = json.loads(p.read_text()); print('SILENT: saved', p.name, 'with train_loss_curve', "
     "rec['train_loss_curve'][-3:], 'status', rec.get('status'))\""),
    ("E2E: a truncated result counts as done", "silent: E2E guards",
     f"{PY} -c \"from pathlib import Path; from dcft_edu.experiments import e2e; r = e2e.make_e2e_run('lora', 'quick', 0); "
     "p = Path('{S}/e2e2') / f'{r.scale}_{r.method}_s{r.seed}_{r.key()}.json'; p.parent.mkdir(parents=True); "
     "p.write_text('{\\\"trunc'); log = lambda s: print('SILENT:' if s.startswith('skip') else 'log:', s)\n"
     "try: e2e.train_and_save(r, p.parent, ('m', 't'), log=log)\nexcept Exception as e: print('stopped:', type(e).__name__)\n"
     "print('OK: moved aside, not counted as done' if p.with_name(p.name + '.bad').exists() else 'SILENT: kept')\""),
    ("E2E: the default --out is the committed figures/data/e2e", "silent: E2E guards",
     "grep -n 'add_argument(\"--out\", default=\"figures/data/e2e\")' dcft_edu/experiments/e2e.py && echo SILENT"),
    # ---- sweeps together, lost work
    ("stale-temp cleanup deletes a fresh temp of another sweep", "lost work",
     f"{PY} -c \"from pathlib import Path; from dcft_edu.experiments import sweep; from dcft_edu.experiments.presets "
     "import make_run; d = Path('{S}/tmpres/s'); d.mkdir(parents=True); t = d / '.rte-lora-x.json.abc.tmp'; "
     "t.write_text('{}'); sweep._pending('s', [make_run('rte', 'lora')], d.parent, log=print); "
     "print('SILENT: a temp written a moment ago was deleted' if not t.exists() else 'OK')\""),
    ("sweep with a misspelt save_delta", "lost work: found after training",
     f"{PY} -m dcft_edu.experiments.sweep {{S}}/g1.json --results {{S}}/sd {SET_SMALL} "
     "--set save_delta=layer.0.attention.self.qurey"),
    ("sweep into an unwritable results folder", "lost work",
     f"{PY} -m dcft_edu.experiments.sweep {{S}}/g1.json --results /proc/dcft_probe {SET_SMALL}"),
]


#: what an API call (``python -c``) raises to refuse: a user's error, named (the CLIs print it as one line)
API_REFUSALS = r"^(\w+\.)*(ValueError|TypeError|FileNotFoundError|FileExistsError|ConnectionError|UserError|RunFailed)\b"


def classify(name: str, rc: int, out: str, seconds: float, cmd: str = "") -> str:
    last = (out.strip().splitlines() or [""])[-1]
    if f'{PY} -c "' in cmd and rc != 0 and re.match(API_REFUSALS, last) and not re.search(r"^SILENT", out, re.M):
        return "OK"  # the API refuses by raising
    if "Traceback (most recent call last)" in out:
        return "TRACEBACK" if seconds < 60 or "save_delta" not in name else "LATE"
    if re.search(r"^SILENT", out, re.M):
        return "SILENT"
    if "save_delta" in name and rc != 0:
        return "LATE" if "train_loss=" in out else "OK"  # LATE: it trained first (an epoch's log line)
    if rc == 0 and "--dry-run" in name:
        return "SILENT" if re.search(r"^todo", out, re.M) else "WRONG-EXIT"
    if rc == 0 and re.search(r"^OK", out, re.M):
        return "OK"
    if rc == 0:
        return "WRONG-EXIT" if ("deadline" in name or "empty" in name) else "SILENT"
    return "OK"


def two_sweeps(scratch: Path) -> tuple[str, str, str]:
    """Two sweeps of one 1-run grid on one results folder, at once: does the run train twice?"""
    cmd = f"{PY} -m dcft_edu.experiments.sweep {scratch}/g1.json --results {scratch}/two {SET_SMALL}"
    procs = [subprocess.Popen(cmd, shell=True, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    trained = sum(o.count("train_loss=") for o in outs)  # one line per trained epoch
    cls = "SILENT" if trained > 1 else "OK"
    return "two sweeps on one results folder", cls, f"the one run was trained {trained} times; {cmd} & {cmd}"


def sigint(scratch: Path) -> tuple[str, str, str]:
    cmd = f"{PY} -m dcft_edu.experiments.train --task rte --method lora --limit-train 256 --max-length 64 --no-progress"
    # SIGINT as a terminal's Ctrl-C delivers it (a probe started in the background inherits SIGINT ignored)
    p = subprocess.Popen(cmd.split(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    head = []  # wait for the model to be loaded (imports take 5 s idle, a minute on a busy machine), then Ctrl-C
    for line in p.stdout:
        head.append(line)
        if line.startswith("dcft_edu: loaded"):
            break
    time.sleep(5)
    os.killpg(p.pid, signal.SIGINT)
    try:
        out = "".join(head) + p.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:  # SIGINT did nothing: stop it, and say so
        os.killpg(p.pid, signal.SIGKILL)
        return "SIGINT during train", "SILENT", f"still running 120 s after SIGINT; {cmd} then Ctrl-C"
    tb = "Traceback (most recent call last)" in out
    cls = "TRACEBACK" if tb else ("OK" if p.returncode == 130 else "WRONG-EXIT")
    return "SIGINT during train", cls, f"exit {p.returncode}, {len(out.splitlines())} lines; {cmd} then Ctrl-C"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="only the cases whose name contains this")
    ap.add_argument("--show", action="store_true", help="print each command and its last output lines")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DCFT_EDU_QUICK": "1",
           "DCFT_EDU_DATA": str(ROOT / "tests" / "data" / "glue_sample")}
    os.environ.update(env)
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="probe_engine_") as s:
        scratch = Path(s)
        (scratch / "g1.json").write_text(GRID1)
        (scratch / "g3.json").write_text(GRID3)
        rows = []
        for name, klass, cmd in CASES:
            if args.k not in name:
                continue
            cmd = cmd.replace("{S}", str(scratch))
            t0 = time.time()
            try:
                p = subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
                rc, out = p.returncode, p.stdout + p.stderr
            except subprocess.TimeoutExpired:
                rc, out = -1, "TIMEOUT"
            cls = classify(name, rc, out, time.time() - t0, cmd)
            rows.append((name, cls, f"exit {rc}, {time.time() - t0:.0f} s: " + (out.strip().splitlines() or [""])[-1][:160]))
            print(f"{cls:10s} {name}  [{klass}]\n           {rows[-1][2]}", flush=True)
            if args.show:
                print("           $ " + cmd)
        for extra_name, extra in (("two sweeps on one results folder", two_sweeps), ("SIGINT during train", sigint)):
            if args.k in extra_name:
                name, cls, what = extra(scratch)
                rows.append((name, cls, what))
                print(f"{cls:10s} {name}\n           {what}", flush=True)
        for _, cls, _ in rows:
            counts[cls] = counts.get(cls, 0) + 1
    print("counts:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), f"(of {len(rows)} cases)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
