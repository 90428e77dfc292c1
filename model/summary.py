"""What a person wants to know about a finished sweep: best and worst mixtures, spread, noise, a plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .domains import TARGET_DOMAIN, loss_column, train_key
from .io import atomic_write_bytes

TARGET = loss_column(TARGET_DOMAIN)


def summarise(frame, sweep, noise_losses: list[float] | None = None) -> dict:
    """Best/worst index by pile_cc loss, the spread across mixtures and the seed noise of one."""
    done = frame[frame.get("status") == "completed"] if "status" in frame else frame
    lines = [f"# RegMix sweep `{sweep.name}`", "",
             f"{len(done)} of {sweep.n_models} models completed (preset `{sweep.preset}`)."]
    out: dict = {"completed": int(len(done))}
    if TARGET in done and done[TARGET].notna().any():
        losses = done[TARGET].dropna()
        best, worst = int(losses.idxmin()), int(losses.idxmax())
        out.update(best_index=best, worst_index=worst, best_loss=float(losses.min()),
                   worst_loss=float(losses.max()), spread=float(losses.max() - losses.min()),
                   spread_std=float(losses.std(ddof=1)) if len(losses) > 1 else 0.0)
        lines += ["", "| | index | pile_cc val loss |", "|---|---|---|",
                  f"| best | {best} | {out['best_loss']:.4f} |", f"| worst | {worst} | {out['worst_loss']:.4f} |",
                  "", f"Spread of pile_cc loss across mixtures: max-min {out['spread']:.4f}, "
                  f"std {out['spread_std']:.4f}."]
        weight = train_key(TARGET_DOMAIN)
        if weight in done and len(losses) > 2:
            from scipy.stats import spearmanr

            rho = spearmanr(done.loc[losses.index, weight], losses).statistic
            out["spearman_weight_loss"] = float(rho)
            lines.append(f"Spearman(pile_cc weight, pile_cc loss) = {rho:.3f}.")
    if noise_losses and len(noise_losses) > 1:
        noise = float(np.std(noise_losses, ddof=1))
        out["noise_std"] = noise
        out["noise_runs"] = len(noise_losses)
        lines.append(f"Run-to-run noise (same mixture, {len(noise_losses)} seeds): std {noise:.4f}.")
        if out.get("spread_std"):
            out["spread_over_noise"] = out["spread_std"] / noise if noise > 0 else float("inf")
            lines.append(f"Spread / noise = {out['spread_over_noise']:.1f}x.")
    out["markdown"] = "\n".join(lines)
    return out


def loss_vs_weight_plot(frame, path: str | Path) -> Path | None:
    """Scatter of pile_cc validation loss against pile_cc weight, one point per model."""
    weight = train_key(TARGET_DOMAIN)
    if TARGET not in frame or weight not in frame or not frame[TARGET].notna().any():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = frame[[weight, TARGET]].dropna()
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.scatter(data[weight], data[TARGET], s=18)
    for index, row in data.iterrows():
        ax.annotate(str(index), (row[weight], row[TARGET]), fontsize=6, alpha=0.6)
    ax.set_xlabel("pile_cc weight in the mixture")
    ax.set_ylabel("pile_cc validation loss")
    ax.set_title("Each point is one model of the sweep")
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
