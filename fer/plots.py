"""Figures, readable at print size, written atomically."""
import matplotlib

matplotlib.use("Agg")  # scripts run headless on GPU boxes and CI
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_path  # noqa: E402
from .records import kept_row, validated_rows  # noqa: E402

plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "figure.dpi": 110, "savefig.dpi": 150,
                     "axes.grid": True, "grid.alpha": 0.3})


def save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight", format=str(path).rsplit(".", 1)[-1])
    plt.close(fig)
    return path


def history_figure(rows, path, title, tail_views=False):
    """Loss and accuracy per epoch, training vs validation, best epoch marked (training only for a run
    without validation); a clean tail shaded (tail_views: on --tta's zoom views rather than the faces as they are)."""
    epochs = [r["epoch"] for r in rows]
    validated, best = "val_accuracy" in rows[-1], kept_row(rows)
    first = (validated_rows(rows) or rows)[0]["epoch"]  # later than the first epoch with --validate-from
    # constrained layout keeps the suptitle clear of the panel titles
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    clean = [r["epoch"] for r in rows if r.get("clean")]
    tail = "clean tail: --tta's zoom views, no erasing" if tail_views else "clean tail: no warps or erasing"
    for ax, key, name in ((loss_ax, "loss", "loss"), (acc_ax, "accuracy", "accuracy")):
        if clean:  # training accuracy jumps there: the faces are no longer warped
            ax.axvspan(clean[0] - 0.5, clean[-1] + 0.5, color="0.92", label=tail)
        ax.plot(epochs, [r[key] for r in rows], "o-", ms=3, label="training")
        if validated:
            ax.plot(epochs, [r["val_" + key] for r in rows], "o-", ms=3,
                    label="validation" if first == epochs[0] else f"validation (from epoch {first})")
            ax.axvline(best["epoch"], color="grey", ls=":", lw=1)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(name)
        ax.legend()
    if validated:
        acc_ax.annotate(f"best {best['val_accuracy']:.4f}\n(epoch {best['epoch']})",
                        (best["epoch"], best["val_accuracy"]), textcoords="offset points", xytext=(-60, -40),
                        arrowprops=dict(arrowstyle="->", color="grey"))
    loss_ax.set_title("loss")
    acc_ax.set_title("accuracy")
    fig.suptitle(title)
    return save(fig, path)


def curves_figure(runs, majority, path):
    """Validation accuracy per epoch of several runs on one axis (training dotted), the majority-class line
    dashed, the legend below the plot so that it never covers a curve."""
    fig, ax = plt.subplots(figsize=(9, 5.4), layout="constrained")
    for (name, rows), colour, marker in zip(runs, plt.cm.tab10.colors, "osD^v<>"):
        epochs = [r["epoch"] for r in rows]
        if "val_accuracy" in rows[-1]:
            ax.plot(epochs, [r["val_accuracy"] for r in rows], marker + "-", ms=3, color=colour,
                    label=f"{name} validation (best {kept_row(rows)['val_accuracy']:.3f})")
        ax.plot(epochs, [r["accuracy"] for r in rows], ":", color=colour, label=f"{name} training")
    if majority:
        ax.axhline(majority, color="black", ls="--", lw=1, label=f"majority class ({majority:.3f})")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("accuracy")
    fig.legend(loc="outside lower center", ncol=2, fontsize=10)
    ax.set_title("Validation accuracy per epoch (training dotted)", fontsize=11)
    return save(fig, path)
