"""dcft_edu.figures.main_results: the tables behind notebooks 07–09, on synthetic rows and on the committed files. Fast."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dcft_edu import figures
from dcft_edu.figures import main_results as fm
from dcft_edu.experiments.analysis import committed_results_dir


def _row(task, method, seed, metric, epochs=None, **kw):
    """A result row as ``load_results`` gives it (only the fields the helpers read)."""
    defaults = dict(r=8, kernel_size=8, stride=None, update_ratio=0.5, lora_scale_jump=False)
    epochs = epochs or [{"epoch": 1, "accuracy": metric, "train_loss": 0.5, "loss": 0.6}]
    n = {"lora": 100, "dcft": 10, "head": 0}[method]
    return dict(task=task, method=method, seed=seed, best_metric=metric, main_metric="accuracy", epochs=epochs,
                adapter_params=n, trainable_params=n + 5, train_time_s=1.0, samples_per_s=10.0, peak_memory_mb=1.0,
                **{**defaults, **kw})


@pytest.fixture
def synthetic() -> pd.DataFrame:
    rows = [_row("rte", "lora", s, 0.60 + 0.01 * s) for s in range(3)]
    rows += [_row("mrpc", "lora", s, 0.80 + 0.02 * s) for s in range(3)]
    rows += [_row("rte", "dcft", 0, 0.50)]  # one seed only, and no MRPC at all
    rows += [_row("rte", "head", s, 0.40 + 0.005 * s) for s in range(2)]
    rows += [_row("mrpc", "head", s, 0.70 + 0.005 * s) for s in range(2)]
    return pd.DataFrame(rows)


def test_cell_shows_n_and_no_std_for_one_seed():
    assert fm.cell(71.234, 1.27, 3) == "71.2 ± 1.3 (n=3)"
    assert fm.cell(71.234, np.nan, 1) == "71.2 (n=1)"
    assert fm.cell(np.nan, np.nan, 0) == "—"


def test_main_table_layout_n_and_missing_cells(synthetic):
    t = fm.main_table(synthetic)
    assert list(t.index) == ["head only", "LoRA r=8", "DCFT k=8"]  # MAIN_METHODS order
    assert list(t.columns) == ["adapter params", "trainable params", "MRPC", "RTE", "Avg."]
    assert t.loc["LoRA r=8", "RTE"] == "61.0 ± 1.0 (n=3)"
    assert t.loc["DCFT k=8", "RTE"] == "50.0 (n=1)"
    assert t.loc["DCFT k=8", "MRPC"] == "—" and t.loc["DCFT k=8", "Avg."] == "—"  # never averaged over a gap
    # Avg.: per-seed average over both tasks (seed s: (60+s + 80+2s)/2), then mean ± std over seeds
    per_seed = [(60 + s + 80 + 2 * s) / 2 for s in range(3)]
    assert t.loc["LoRA r=8", "Avg."] == fm.cell(np.mean(per_seed), np.std(per_seed, ddof=1), 3)
    assert t.loc["head only", "adapter params"] == 0 and t.loc["LoRA r=8", "trainable params"] == 105


def test_main_means_average_is_nan_when_a_task_is_missing(synthetic):
    m = fm.main_means(synthetic)
    assert m.loc["LoRA r=8", "avg"] == pytest.approx((61 + 82) / 2)
    assert np.isnan(m.loc["DCFT k=8", "avg"])


def test_method_difference_and_welch(synthetic):
    d = fm.method_difference(synthetic, "LoRA r=8", "head only")
    assert d.loc["RTE", "difference"] == pytest.approx(61 - 40.25)
    assert d.loc["RTE", "n"] == "3 vs 2" and d.loc["RTE", "Welch p"] < 0.05
    one = fm.method_difference(synthetic, "DCFT k=8", "head only")
    assert np.isnan(one.loc["RTE", "Welch p"])  # one seed: no test
    assert np.isnan(one.loc["MRPC", "difference"])  # no DCFT run on MRPC: no number


def test_paper_numbers_reproduce_the_papers_own_averages():
    """Transcription check: each row's mean over all its GLUE tasks is the average the paper printed."""
    for p in fm.PAPER_GLUE:
        avg = np.mean([p[t] for t in fm.PAPER_TASKS])
        if "avg_note" in p:  # the paper's own inconsistency, documented beside the numbers
            assert abs(avg - p["reported_avg"]) > 0.01
            continue
        assert abs(avg - p["reported_avg"]) < 0.01, (p["source"], p["method"], avg)  # printed truncated or rounded
    t = fm.paper_table()
    assert set(t["our row"]) <= set(fm.MAIN_METHODS)
    assert t.set_index("method").loc["DCFT k=8 (DCFTΔ)", "avg (these 5)"] == pytest.approx(87.51, abs=0.005)


def test_convergence_table_from_epochs():
    ep = lambda vals, losses: [{"epoch": i + 1, "accuracy": v, "train_loss": l, "loss": 0.0}  # noqa: E731
                               for i, (v, l) in enumerate(zip(vals, losses))]
    df = pd.DataFrame([_row("rte", "dcft", 0, 0.7, ep([0.5, 0.6, 0.7], [0.9, 0.8, 0.7])),
                       _row("rte", "dcft", 1, 0.7, ep([0.5, 0.7, 0.6], [0.9, 0.8, 0.6]))])
    c = fm.convergence_table(df).loc[("rte", "DCFT k=8")]
    assert c["epoch 1"] == pytest.approx(50) and c["last"] == pytest.approx(65)
    assert c["last gain"] == pytest.approx((10 - 10) / 2)  # +10 and −10 points
    assert c["best = last"] == 0.5 and c["train loss last"] == pytest.approx(0.65) and c["n"] == 2


def test_similarity_frame_parses_names_and_clips():
    ws = {"bert.encoder.layer.3.attention.self.query": {"cosine": 0.99, "rel_change": 0.1},
          "bert.encoder.layer.0.attention.self.value": {"cosine": 1.0, "rel_change": 0.0},
          "bert.encoder.layer.0.attention.self.key": {"cosine": 0.5, "rel_change": 0.5}}  # not Wq/Wv: ignored
    df = pd.DataFrame([{**_row("rte", "lora", 0, 0.6), "weight_similarity": ws}])
    s = fm.similarity_frame(df).set_index(["layer", "proj"])
    assert len(s) == 2 and s.loc[(3, "Wq"), "one_minus_cos"] == pytest.approx(0.01)
    assert s.loc[(0, "Wv"), "one_minus_cos"] == 1e-12  # log-safe
    o = fm.similarity_ordering(fm.similarity_frame(df).assign(label=lambda d: d["label"]), "rte", ["LoRA r=8"])
    assert o.loc["LoRA r=8", "mean cosine"] == pytest.approx(0.995)


def test_parse_bench_adapters_both_tables():
    text = (committed_results_dir() / "efficiency" / "bench_adapters_cuda.txt").read_text()
    ms = fm.parse_bench_adapters(text)
    assert ms.shape == (5, 3) and list(ms.columns) == ["768→768", "768→3072", "3072→768"]
    assert (ms.to_numpy() > 0).all()
    ratio = fm.parse_bench_adapters(text, table="ratio")
    assert list(ratio.index) == ["DCFT fast / LoRA r=8", "DCFT conv / DCFT fast"]
    np.testing.assert_allclose(ratio.loc["DCFT conv / DCFT fast"],
                               ms.loc["DCFT conv (k=8, s=8)"] / ms.loc["DCFT fast (k=8, s=8)"], rtol=0.1)
    with pytest.raises(ValueError, match="no table"):
        fm.parse_bench_adapters("nothing here")


def test_bench_train_frame(tmp_path):
    rec = {"samples_per_s": {"lora": 100.0, "dcft_fast": 80.0, "head": 400.0},
           "memory_mb": {"lora": 1000.0, "dcft_fast": 1050.0, "head": 500.0}, "device": "GPU X",
           "settings": {"task": "rte", "batch_size": 32, "max_length": 128}}
    (tmp_path / "bench_train_cuda_rte.json").write_text(json.dumps(rec))
    (tmp_path / "bench_train_cpu_rte.json").write_text(json.dumps({**rec, "device": "CPU"}))
    b = fm.bench_train_frame("cuda", tmp_path, train_sizes={"rte": 2000}).set_index("method")
    assert list(b.index) == ["head", "lora", "dcft_fast"]  # BENCH_ORDER
    assert b.loc["lora", "speed vs LoRA"] == 1.0 and b.loc["dcft_fast", "speed vs LoRA"] == pytest.approx(0.8)
    assert b.loc["dcft_fast", "s per epoch"] == pytest.approx(25.0) and set(b["device"]) == {"GPU X"}
    with pytest.raises(FileNotFoundError):
        fm.bench_train_frame("tpu", tmp_path)
    # a paper-backbone file sits beside MiniLM's and is read only when asked for
    paper = {**rec, "memory_mb": {}, "settings": {**rec["settings"], "backbone": "deberta-v3-base"}}
    (tmp_path / "bench_train_cuda_deberta-v3-base_64.json").write_text(json.dumps(paper))
    assert len(fm.bench_train_frame("cuda", tmp_path)) == 3
    d = fm.bench_train_frame("cuda", tmp_path, backbone="deberta-v3-base").set_index("method")
    assert d.loc["dcft_fast", "speed vs LoRA"] == pytest.approx(0.8) and d["memory MiB"].isna().all()


def test_train_sizes():
    df = pd.DataFrame({"task": ["rte", "rte", "mrpc"], "train_examples_seen": [80, 80, 30],
                       "epochs": [[{}] * 8, [{}] * 8, [{}] * 3]})
    assert fm.train_sizes(df) == {"rte": 10, "mrpc": 10}
    with pytest.raises(ValueError):
        fm.train_sizes(df.assign(train_examples_seen=[80, 88, 30]))


def test_committed_main_sweep_and_registered_figures():
    assert {"glue_main_results", "cosine_similarity", "efficiency"} <= set(figures.FIGURES)
    df = fm.main_runs()
    t = fm.main_table(df)
    assert list(t.index) == fm.MAIN_METHODS
    assert t.drop(columns=["adapter params", "trainable params"]).map(lambda c: c.endswith("(n=3)")).all().all()
    assert t.loc["DCFT k=8", "adapter params"] == 7488 and t.loc["LoRA r=1", "adapter params"] == 41472
    sizes = fm.train_sizes(df)
    assert sizes == {"cola": 6666, "mrpc": 3668, "rte": 2490, "sst2": 6666, "stsb": 5749}


def test_overlay_main_results_puts_every_run_on_its_panel_and_keeps_the_committed_scale():
    """Notebook 07's overlay: a star per lab run on every task panel trained, values written, committed y-limits
    kept (an off-axis run on the edge, "↓ value"), head only at the far left, the legend naming the student's runs."""
    import matplotlib.pyplot as plt

    fig = fm.draw_glue_main_results()
    panels = {ax.get_title(): ax for ax in fig.axes}
    before = {t: ax.get_ylim() for t, ax in panels.items()}
    committed = fm.main_runs()
    yours = committed[(committed["seed"] == 0) & committed["task"].isin(["stsb", "mrpc"])].copy()
    yours.loc[(yours["task"] == "stsb") & (yours["label"] == "full FT"), "best_metric"] = 0.671  # far below the axis
    assert sorted(fm.overlay_main_results(fig, yours)) == ["MRPC", "STS-B"]
    for title, ax in panels.items():
        assert ax.get_ylim() == pytest.approx(before[title]), f"{title}: the committed y-limits moved"
    stsb = panels["STS-B"]
    stars = [c for c in stsb.collections if c.get_offsets().shape[0] == 7]  # the 7 methods of the student's STS-B
    assert len(stars) == 1
    xy = stars[0].get_offsets()
    lo, hi = stsb.get_ylim()
    assert ((xy[:, 1] >= lo) & (xy[:, 1] <= hi)).all()  # every star inside the panel, off-axis ones on the edge
    assert xy[:, 0].min() == fm.HEAD_ONLY_X  # head only at the far left
    texts = [t.get_text() for t in stsb.texts]
    assert "↓ 67.1" in texts
    assert len(texts) == 7  # every run's value written
    assert not panels["RTE"].texts and not [c for c in panels["RTE"].collections if c.get_offsets().shape[0] == 7]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(fig.legends) == 1 and legend[-1].startswith("your lab runs (")
    # the head-only note is a corner title, so no star can sit on it
    assert stsb.get_title(loc="right").startswith("head only ")
    plt.close(fig)
