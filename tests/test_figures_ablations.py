"""dcft_edu.figures.ablations: labels, cells, coverage, closed-form counts, checkerboard measure, figures.

Fast (seconds): parameter counts use weightless (meta) models; the figures read the committed results.
"""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from transformers import AutoConfig  # noqa: E402

from dcft_edu import DCFTConfig, LoRAConfig  # noqa: E402
from dcft_edu.figures import ablations as fa  # noqa: E402
from dcft_edu.experiments.analysis import CPU_RESULTS, committed_results_dir, summarize  # noqa: E402
from dcft_edu.dcft import coverage_map  # noqa: E402
from dcft_edu.figures import FIGURES  # noqa: E402
from dcft_edu.inject import count_for_config  # noqa: E402
from dcft_edu.experiments.models import default_model_path  # noqa: E402
from dcft_edu.experiments.presets import make_run  # noqa: E402
from dcft_edu.experiments.sweep import GRIDS, grid_runs, result_path  # noqa: E402

HAVE_RESULTS = all((committed_results_dir() / s).is_dir() for s in ("main", "kernel", "stride", "layers"))
needs_results = pytest.mark.skipif(not HAVE_RESULTS, reason="committed results not present")


# ------------------------------------------------------------------ labels and cells
def test_labels():
    assert fa.target_label(["query", "value"]) == "q,v"
    assert fa.target_label(["query", "key", "value", "attention.output.dense"]) == "q,k,v,o"
    assert fa.target_label("all-linear") == "all six"
    assert fa.blocks_label(None) == "blocks 0–5"
    assert fa.blocks_label([3, 4, 5]) == "blocks 3–5"
    assert fa.blocks_label([0, 2]) == "blocks 0,2"
    assert fa.config_label({"target_modules": "all-linear", "layers": [0, 1, 2]}) == "all six, blocks 0–2"
    assert fa.config_label({"target_modules": ["query", "value"], "layers": None}) == "q,v"
    assert fa.stride_value({"kernel_size": 8, "stride": None}) == 8
    assert fa.stride_value({"kernel_size": 8, "stride": float("nan")}) == 8
    assert fa.stride_value({"kernel_size": 8, "stride": 6.0}) == 6


def _fake_rows():
    base = dict(method="dcft", kernel_size=8, adapter_params=7488, device="NVIDIA H100 80GB HBM3",
                target_modules="all-linear", layers=None, stride=None)
    return pd.DataFrame([
        {**base, "task": "rte", "seed": 0, "best_metric": 0.50, "train_time_s": 10.0},
        {**base, "task": "rte", "seed": 1, "best_metric": 0.54, "train_time_s": 12.0},
        {**base, "task": "mrpc", "seed": 0, "best_metric": 0.75, "train_time_s": 20.0, "device": "NVIDIA H200"},
    ])


def test_summarize_and_time_table():
    s = summarize(_fake_rows(), ["task", "kernel_size"]).set_index("task")
    assert s.loc["rte", "n"] == 2 and s.loc["rte", "mean"] == pytest.approx(52.0)
    assert s.loc["rte", "std"] == pytest.approx(100 * np.std([0.50, 0.54], ddof=1))
    assert s.loc["mrpc", "n"] == 1 and np.isnan(s.loc["mrpc", "std"])
    assert s.loc["mrpc", "cell"] == "75.0 (n=1)" and s.loc["rte", "cell"].endswith("(n=2)")
    assert s.loc["rte", "device"] == "H100" and s.loc["rte", "seeds"] == "0,1"
    assert s.loc["rte", "adapter_params"] == 7488 and s.loc["rte", "train_time_s"] == pytest.approx(11.0)
    t = fa.time_table(_fake_rows(), "kernel_size")
    assert t.loc[8, "H100 RTE"] == "11 s (n=2)" and t.loc[8, "H200 MRPC"] == "20 s (n=1)"
    assert "H100 MRPC" not in t.columns  # MRPC never ran on the H100: nothing filled in


def test_grid_coverage_counts_only_existing_files(tmp_path):
    runs = grid_runs(GRIDS["kernel"], scale="gpu")
    first = runs[0]
    p = result_path(tmp_path, "kernel", first)
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"key": first.key(), "config": first.to_dict(), "best": {"epoch": 1}, "best_metric": 0.5}))
    result_path(tmp_path, "kernel", runs[1]).write_text("")  # an empty (killed mid-write) file is no result
    cov = fa.grid_coverage("kernel", folder=tmp_path)
    assert len(cov) == len(runs) == 4 * 5 * 3
    assert cov["present"].sum() == 1
    t = fa.coverage_table(cov, ["kernel_size"])
    assert list(t.columns) == ["CoLA", "MRPC", "STS-B", "RTE"]
    cell = t.loc[first.kernel_size, {"cola": "CoLA", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE"}[first.task]]
    assert cell == f"1/3 (seed {first.seed})"
    assert (t.drop(index=first.kernel_size) == "0/3").all().all()


# ------------------------------------------------------------------ closed-form counts
@pytest.mark.parametrize("method,kw", [
    ("lora", dict(target_modules=["query", "value"])),
    ("lora", dict(target_modules=["query", "key", "value", "attention.output.dense"])),
    ("lora", dict(target_modules="all-linear", layers=[3, 4, 5])),
    ("dcft", dict(kernel_size=2)),
    ("dcft", dict(kernel_size=12)),
    ("dcft", dict(kernel_size=8, stride=1)),
    ("dcft", dict(kernel_size=8, stride=6)),
    ("dcft", dict(target_modules=["query", "value"])),
])
def test_expected_adapter_params_matches_the_injected_count(method, kw):
    run = make_run("mrpc", method, scale="gpu", **kw)
    cfg = AutoConfig.from_pretrained(default_model_path())
    common = dict(target_modules=run.target_modules, layers=run.layers, r=run.r)
    adapter = LoRAConfig(**common) if method == "lora" else DCFTConfig(kernel_size=run.kernel_size,
                                                                     stride=run.stride, **common)
    assert fa.expected_adapter_params(run) == count_for_config(cfg, adapter)


def test_expected_adapter_params_worked_numbers():
    assert fa.expected_adapter_params(make_run("mrpc", "lora", target_modules=["query", "value"])) == 12 * 8 * 768
    # DCFT k = s = 8, all six: per block 4 × (48 + 48 + 64) + 2 × (48 + 192 + 64), 6 blocks
    assert fa.expected_adapter_params(make_run("mrpc", "dcft")) == 6 * (4 * 160 + 2 * 304) == 7488
    assert len(fa.adapted_shapes(make_run("mrpc", "dcft", layers=[0, 1, 2]))) == 18


# ------------------------------------------------------------------ checkerboard measure
def test_rms_by_coverage():
    cov = coverage_map(8, 6, (96, 96)).numpy().astype(np.float32)
    rms = fa.rms_by_coverage(cov, 8, 6)
    assert list(rms.index) == [1, 2, 4] and np.allclose(rms.values, [1, 2, 4])
    one = fa.rms_by_coverage(np.full((96, 96), 0.5, dtype=np.float32), 8, 8)
    assert list(one.index) == [1] and one.iloc[0] == pytest.approx(0.5)


def test_checkerboard_contrast_separates_uneven_from_even():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((192, 192)).astype(np.float32)
    cov6 = coverage_map(8, 6, (192, 192)).numpy()
    deltas = pd.DataFrame([{"task": "rte", "s": 6, "delta": noise * np.sqrt(cov6)},  # variance ∝ taps
                           {"task": "rte", "s": 8, "delta": noise}])
    c = fa.checkerboard_contrast(deltas, 8, 6)
    assert c.loc[(6, "rte"), 2] == pytest.approx(np.sqrt(2), rel=0.1)
    assert c.loc[(6, "rte"), 4] == pytest.approx(2.0, rel=0.1)
    assert abs(c.loc[(8, "rte"), 2] - 1) < 0.1 and abs(c.loc[(8, "rte"), 4] - 1) < 0.1


def test_interior_tiles():
    x = np.arange(20 * 20, dtype=np.float32).reshape(20, 20)
    tiles = fa.interior_tiles(x, 2, 5)
    assert len(tiles) == 9 and all(t.shape == (5, 5) for t in tiles)  # 16 // 5 = 3 per side
    assert tiles[0][0, 0] == x[2, 2] and tiles[-1][-1, -1] == x[16, 16]


def test_weight_change_table():
    ws = {f"bert.encoder.layer.{i}.attention.self.{m}": {"cosine": 1.0, "rel_change": 0.1 * i}
          for i in range(3) for m in ("query", "value")}
    t = fa.weight_change(ws)
    assert list(t.index) == [0, 1, 2]
    assert t.loc[2, ("rel_change", "value")] == pytest.approx(0.2)


# ------------------------------------------------------------------ committed results and figures
@needs_results
def test_learned_deltas_are_384_square_and_nonzero():
    d = fa.stride_deltas()
    assert len(d) >= 1 and set(d["s"]) <= {1, 2, 4, 6, 8}
    for x in d["delta"]:
        assert x.shape == (384, 384) and np.isfinite(x).all() and np.abs(x).max() > 0


@needs_results
def test_committed_counts_equal_closed_forms():
    for sweep in ("kernel", "stride", "layers"):
        df = fa.ablation_results(sweep)
        for _, r in df.iterrows():
            run = make_run(r["task"], r["method"], scale="gpu", kernel_size=int(r["kernel_size"]),
                           stride=None if np.isnan(r["s"]) else int(r["s"]), target_modules=r["target_modules"],
                           layers=r["layers"])
            assert r["adapter_params"] == fa.expected_adapter_params(run), r["file"]


def _labelled_axes(xs, ys):
    """A small log-x axes with a marker at each (x, y) and its label on the first of ``LABEL_SPOTS``, drawn."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(xs, ys, "o", ms=9)
    ax.set_xscale("log")
    ax.set_xlim(1, 100)
    ax.set_ylim(0, 10)
    labels = [ax.annotate(f"config {i}\nn=3", (x, y), xytext=fa.LABEL_SPOTS[0][0], textcoords="offset points",
                          fontsize=8) for i, (x, y) in enumerate(zip(xs, ys))]
    fig.canvas.draw()
    return fig, ax, labels


def _assert_inside_and_apart(ax, boxes):
    for i, box in enumerate(boxes):
        assert ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1)
        for j in range(i):
            assert not box.padded(-2).overlaps(boxes[j].padded(-2)), (i, j)


def test_declutter_moves_labels_off_other_markers():
    """Two markers one above the other at the same x: the first spot of the upper one's label lies beside the
    lower marker, so ``_declutter`` must move it; no two labels may overlap afterwards."""
    xs, ys = [10.0, 10.0, 30.0], [5.0, 4.6, 5.0]
    fig, ax, labels = _labelled_axes(xs, ys)
    try:
        r = fig.canvas.get_renderer()
        lower = ax.transData.transform((xs[1], ys[1]))
        assert labels[0].get_window_extent(r).contains(lower[0] + 15, lower[1])  # first spot: beside marker 1
        fa._declutter(ax, labels, [0.0, 0.0, 0.0])
        boxes = [a.get_window_extent(r) for a in labels]
        assert not boxes[0].contains(lower[0] + 15, lower[1])
        _assert_inside_and_apart(ax, boxes)
    finally:
        plt.close(fig)


@needs_results
@pytest.mark.parametrize("name,n_axes", [("kernel_ablation", 8), ("stride_ablation", 8),
                                         ("layer_ablation", 2), ("stride_learned_delta", 40)])
def test_figures_draw(name, n_axes):
    assert name in FIGURES
    cpu_layers = committed_results_dir() / CPU_RESULTS / "layers"
    if name == "layer_ablation" and cpu_layers.is_dir():  # one more panel per task trained on a CPU
        n_axes += len({p.name.split("-")[0] for p in cpu_layers.glob("*.json")})
    fig = FIGURES[name]()
    try:
        # twin axes for the parameter counts; colour bars count as axes too
        assert len(fig.axes) == n_axes
        assert fig.get_suptitle()
    finally:
        plt.close(fig)


def test_declutter_separates_labels_of_coinciding_markers():
    """Four markers at (almost) the same point leave too few spots free of the others' surroundings;
    ``_declutter`` must then take the least crowded spots, so the labels still stay inside the axes and off
    each other (keeping the first spot, as it once did, piles them up)."""
    fig, ax, labels = _labelled_axes([10.0, 10.0, 10.2, 9.9], [5.0, 5.02, 4.98, 5.01])
    try:
        fa._declutter(ax, labels, [0.0, 0.0, 0.0, 0.0])
        r = fig.canvas.get_renderer()
        _assert_inside_and_apart(ax, [a.get_window_extent(r) for a in labels])
    finally:
        plt.close(fig)
