"""The concept figures of the teaching notebooks: the checkerboard (03) and the dropout gradient gap (05).

- ``checkerboard``: ``draw_checkerboard`` (paper: DCFT Appendix D and the
  stride ablation, Table 5), drawn in ``03_checkerboard_artifacts``.
- ``dropout_gradient_gap``: ``draw_dropout_gradient_gap`` (paper: Delta-LoRA
  §4.2, Eq. 4 and Eq. 7), drawn in ``05_dropout_gradient``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt  # headless machines fall back to Agg by themselves
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..dcft import coverage_map, deconv_reference, subspace_size
from ..dropout_gradient import dropout_gradient_gap
from ..experiments.runinfo import is_quick
from .registry import _in_single_thread, register


# ------------------------------------------------------------------ checkerboard
#: kernel and strides of the paper's stride ablation (Table 5, k = 8) plus s = 6
CHECKERBOARD_KERNEL = 8
CHECKERBOARD_STRIDES = (1, 2, 4, 6, 8)


def checkerboard_delta(
    stride: int, kernel_size: int = CHECKERBOARD_KERNEL, size: int = 160, mean: float = 1.0, std: float = 0.1,
    seed: int = 0,
) -> torch.Tensor:
    """ΔW = Deconv(b aᵀ; C, stride) of shape (size, size) from random factors (float64, scale 1).

    a, b (the rank-1 subspace, as in the paper) and the k × k kernel C are drawn
    i.i.d. from N(mean, std²): a positive "signal" plus noise, so any periodic
    pattern in ΔW comes from the upsampling itself. One seed, the same draws
    for every stride that needs the same subspace size.
    """
    h = subspace_size(size, kernel_size, stride)
    g = torch.Generator().manual_seed(seed)
    a = mean + std * torch.randn(h, generator=g, dtype=torch.float64)
    b = mean + std * torch.randn(h, generator=g, dtype=torch.float64)
    C = mean + std * torch.randn(kernel_size, kernel_size, generator=g, dtype=torch.float64)
    # M = b aᵀ : (h, h);  ΔW = crop(Deconv(M; C, s)) : (size, size)
    return deconv_reference(torch.outer(b, a), C, stride, (size, size))


def log_power_spectrum(deltas: Sequence[np.ndarray], margin: int) -> tuple[np.ndarray, np.ndarray]:
    """(log10 of the mean power spectrum, frequencies) of the interior of one or more ΔW.

    Each ΔW: ``margin`` cells dropped on every side (the borders, where fewer
    taps land, would otherwise dominate), mean removed, Hann-windowed, then
    |FFT|²; the power is averaged over the ΔWs (averaging over random draws
    keeps what every draw shares and smooths the rest), normalised to a
    maximum of 1, zero frequency centred. Frequencies are in cycles per cell,
    −0.5 to 0.5: a pattern repeating every s cells shows up as peaks at
    multiples of 1/s.
    """
    power = None
    for delta in deltas:
        x = delta[margin:-margin, margin:-margin] if margin else delta
        x = x - x.mean()
        w = np.hanning(x.shape[0])[:, None] * np.hanning(x.shape[1])[None, :]
        p = np.abs(np.fft.fftshift(np.fft.fft2(x * w))) ** 2
        power = p if power is None else power + p
    power /= power.max()
    freqs = np.fft.fftshift(np.fft.fftfreq(power.shape[0]))
    return np.log10(power + 1e-30), freqs


def _coverage_verdict(inner: np.ndarray, s: int, k: int) -> str:
    values = sorted(int(v) for v in np.unique(inner))
    if s == k:
        return "no overlap: 1 tap"
    if len(values) == 1:
        return f"even: {values[0]} taps"
    return f"uneven: {', '.join(map(str, values[:-1]))} or {values[-1]} taps"


def _freq_ticks(ax, s: int) -> None:
    """Label 0, ±1/s and ±1/2 on both axes of a spectrum panel; minor ticks at every multiple of 1/s."""
    major = sorted({-0.5, 0.0, 0.5} | ({-1 / s, 1 / s} if s > 1 else set()))
    labels = [_frac(t, 2 if abs(t) == 0.5 else s) for t in major]
    minor = [m / s for m in range(-(s // 2), s // 2 + 1)] if s > 1 else []
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(major, labels, fontsize=8)
        axis.set_ticks(minor, minor=True)
    ax.tick_params(which="minor", length=3, color="0.3")
    ax.tick_params(which="major", length=5)


def spectrum_panel(fig, ax, spec: np.ndarray, freqs: np.ndarray, s: int, vmin: float, label: str) -> None:
    """Draw a ``log_power_spectrum`` result on ``ax``: cividis, max = 0, frequency ticks at multiples of 1/s."""
    half = 0.5 / len(freqs)  # each pixel is centred on its frequency
    ext = (freqs[0] - half, freqs[-1] + half, freqs[-1] + half, freqs[0] - half)
    im = ax.imshow(spec, cmap="cividis", vmin=vmin, vmax=0.0, extent=ext, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02).set_label(label, fontsize=9)
    _freq_ticks(ax, s)
    ax.set_xlabel("frequency along columns\n(cycles per cell)", fontsize=9)


@register("checkerboard")
@_in_single_thread
def draw_checkerboard(
    kernel_size: int = CHECKERBOARD_KERNEL, strides: Sequence[int] = CHECKERBOARD_STRIDES, show: int = 48,
    size: int = 160, n_draws: Optional[int] = None,
) -> Figure:
    """Coverage map, ΔW heatmap and 2-D spectrum for kernel k and each stride s (DCFT Appendix D).

    Rows: (1) how many kernel taps land on each cell of ΔW (``coverage_map``);
    (2) ΔW from one draw of random factors (``checkerboard_delta``, seed 0),
    top-left ``show`` × ``show`` corner, divided by its interior mean;
    (3) log10 of the power spectrum of ΔW's interior, averaged over
    ``n_draws`` random draws (``log_power_spectrum``). Columns: the strides.
    Everything is computed on a ``size`` × ``size`` ΔW.
    """
    if n_draws is None:
        n_draws = 8 if is_quick() else 64
    strides = list(strides)
    n, k = len(strides), kernel_size
    fig, axes = plt.subplots(3, n, figsize=(3.4 * n, 10.6), squeeze=False, layout="constrained")
    for j, s in enumerate(strides):
        cov = coverage_map(k, s, (size, size)).numpy()
        axes[0, j].set_title(f"stride s = {s}\n{_coverage_verdict(cov[k:-k, k:-k], s, k)}", fontsize=10.5)

        # row 1: coverage map (integers), own colour scale
        ax = axes[0, j]
        c = cov[:show, :show]
        im = ax.imshow(c, cmap="viridis", vmin=0, vmax=max(1, int(c.max())), interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02)
        cb.set_label("kernel taps per cell", fontsize=9)
        cb.ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))

        # row 2: ΔW / interior mean, same colour scale for every stride
        ax = axes[1, j]
        deltas = [checkerboard_delta(s, k, size, seed=seed).numpy() for seed in range(n_draws)]
        d = deltas[0] / deltas[0][k:-k, k:-k].mean()
        im = ax.imshow(d[:show, :show], cmap="magma", vmin=0.0, vmax=2.5, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, shrink=0.85, pad=0.02)
        cb.set_label("ΔW / mean of ΔW", fontsize=9)

        # row 3: mean power spectrum of the interior, same colour scale for every stride
        ax = axes[2, j]
        spec, freqs = log_power_spectrum(deltas, k)
        spectrum_panel(fig, ax, spec, freqs, s, vmin=-6.0, label="log₁₀ power (max = 0)")

        for i in range(3):
            axes[i, j].grid(False)
        for i in (0, 1):
            axes[i, j].set_xlabel("column (input dim)", fontsize=9)
            axes[i, j].tick_params(labelsize=8)

    axes[0, 0].set_ylabel("coverage map\n(borders get fewer taps)\nrow (output dim)", fontsize=10)
    axes[1, 0].set_ylabel(f"ΔW, one random draw\n(top-left {show}×{show})\nrow (output dim)", fontsize=10)
    axes[2, 0].set_ylabel(f"spectrum of ΔW ({n_draws} draws)\nfrequency along rows", fontsize=10)
    fig.suptitle(
        f"Checkerboard artifacts in DCFT:  ΔW = Deconv(b aᵀ; C, stride s),  kernel k = {k}  "
        "(paper Appendix D; strides of Table 5)\n"
        "Rows 2–3: the rank-1 subspace M = b aᵀ and the 8×8 kernel C with entries drawn i.i.d. from N(1, 0.1²) "
        "(a smooth signal plus noise).",
        fontsize=11.5,
    )
    fig.supxlabel(
        "How to read the spectra: the centre and the two axes through it hold the random factors themselves; "
        "structure that the upsampling adds repeats every s cells and sits at multiples of 1/s.\n"
        "A grid of bright SPOTS (s = 6) is the checkerboard of uneven coverage: it is there whatever the factors are. "
        "LINES at multiples of 1/s (s = 2, 4, 8) are the kernel's pattern repeated\nevery s cells, weighted by "
        "the random factors; at s = k this is exact (ΔW = M ⊗ C is made of k×k blocks) but no cell gets two taps. "
        "s = 1 adds almost nothing.",
        fontsize=10.5,
    )
    return fig


def _frac(t: float, s: int) -> str:
    """Tick label m/s for a frequency t = m/s ("0", "1/6", "−1/2" …)."""
    m = round(t * s)
    if m == 0:
        return "0"
    from math import gcd

    g = gcd(abs(m), s)
    num, den = m // g, s // g
    sign = "−" if num < 0 else ""
    return f"{sign}{abs(num)}" if den == 1 else f"{sign}{abs(num)}/{den}"


# ----------------------------------------------------------- dropout gradient gap
def dropout_gap_curve(ps: Sequence[float], n_trials: int, **kwargs) -> dict[str, np.ndarray]:
    """``dropout_gradient_gap`` at every p: arrays ``p``, ``gap``, ``gap_min``, ``gap_max``, ``reference``, ``cosine``,
    ``gap_no_dropout``."""
    rows = [dropout_gradient_gap(p=float(p), n_trials=n_trials, **kwargs) for p in ps]
    return {
        "p": np.array([r["p"] for r in rows]),
        "gap": np.array([r["gap"] for r in rows]),
        "gap_min": np.array([min(r["gap_per_trial"]) for r in rows]),
        "gap_max": np.array([max(r["gap_per_trial"]) for r in rows]),
        "reference": np.array([r["reference"] for r in rows]),
        "cosine": np.array([r["cosine"] for r in rows]),
        "gap_no_dropout": np.array([r["gap_no_dropout"] for r in rows]),
    }


@register("dropout_gradient_gap")
@_in_single_thread
def draw_dropout_gradient_gap(n_trials: Optional[int] = None) -> Figure:
    """Relative gap ‖∂L/∂W − ∂L/∂(BA)/s‖ / ‖∂L/∂W‖ and cosine vs the dropout rate p (Delta-LoRA Eq. 4/7)."""
    quick = is_quick()
    if n_trials is None:
        n_trials = 4 if quick else 16
    ps = np.linspace(0.0, 0.9, 10 if quick else 19)
    cfg = dict(d_in=64, d_out=64, r=8, batch=32, lora_alpha=16.0)
    c = dropout_gap_curve(ps, n_trials, **cfg)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.3), layout="constrained")

    ax.axvspan(0.05, 0.1, color="0.85", zorder=0, label="LoRA's usual dropout, 0.05–0.1")
    ax.fill_between(c["p"], c["gap_min"], c["gap_max"], alpha=0.25, color="C0",
                    label=f"min–max over {n_trials} random draws")
    ax.plot(c["p"], c["gap"], "o-", color="C0", label="measured gap, with dropout p")
    ax.plot(c["p"], c["reference"], "--", color="C1", label=r"reference $\sqrt{p/(1-p)}$")
    ax.plot(c["p"], c["gap_no_dropout"], "s", color="C2", ms=4, clip_on=False,
            label="same draws, no dropout (Eq. 4): 0")
    ax.set_xlabel("LoRA dropout rate p")
    ax.set_ylabel(r"relative gap  $\|\nabla_W L - \nabla_{BA} L / s\|_F \,/\, \|\nabla_W L\|_F$")
    ax.set_title("Dropout breaks  ∂L/∂W = ∂L/∂(BA) / s  (Eq. 7)")
    ax.set_xlim(0, 0.92)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=9)

    ax2.plot(c["p"], c["cosine"], "o-", color="C0")
    ax2.set_xlabel("LoRA dropout rate p")
    ax2.set_ylabel(r"cosine$(\nabla_W L,\ \nabla_{BA} L)$")
    ax2.set_title("Direction of the two gradients")
    ax2.set_xlim(0, 0.92)
    ax2.set_ylim(0, 1.05)
    ax2.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax2.annotate("1 = same direction\n(no dropout)", xy=(0.0, 1.0), xytext=(0.08, 0.78), fontsize=9,
                 arrowprops=dict(arrowstyle="->", color="0.4"))

    fig.suptitle(
        f"Why Delta-LoRA removes dropout: gradient of the frozen W vs. of the product BA  "
        f"(one layer {cfg['d_in']}→{cfg['d_out']}, r = {cfg['r']}, s = α/r = {cfg['lora_alpha'] / cfg['r']:g}, "
        f"batch {cfg['batch']}, float64)",
        fontsize=11,
    )
    return fig
