"""The human report of a run or an evaluation: report.md, a confusion-matrix PNG and a
learning-curves PNG (matplotlib, Agg backend, imported only here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CONFUSION_PNG = "confusion.png"
CURVES_PNG = "learning_curves.png"
SUBJECTS_PNG = "subjects.png"
REPORT_MD = "report.md"


def plot_confusion(path: Path, confusion: list[list[int]], labels: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion, dtype=np.float64)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)  # recall per true class
    size = 3 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rows[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(path: Path, histories: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, h in histories.items():
        if "val_macro_f1" not in h:
            continue
        epochs = np.arange(1, len(h["loss"]) + 1)
        loss_ax.plot(epochs, h["loss"], label=name)
        f1_ax.plot(epochs, h["val_macro_f1"], label=name)
    loss_ax.set(xlabel="epoch", ylabel="training loss (weighted)", title="loss")
    f1_ax.set(xlabel="epoch", ylabel="validation macro-F1", title="validation macro-F1", ylim=(0, 1))
    for ax in (loss_ax, f1_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_subjects(path: Path, per_subject: dict[str, dict], overall: float,
                  validation: float | None) -> None:
    """Test macro-F1 of each test subject as bars, with the overall and validation figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_subject)
    fig, ax = plt.subplots(figsize=(2 + 0.5 * len(names), 3.5))
    ax.bar(names, [per_subject[n]["macro_f1"] for n in names], color="tab:blue")
    ax.axhline(overall, color="black", lw=1, label=f"all test windows {overall:.3f}")
    if validation is not None:
        ax.axhline(validation, color="tab:orange", ls="--", lw=1,
                   label=f"validation (best epoch) {validation:.3f}")
    ax.set(xlabel="test subject", ylabel="macro-F1", ylim=(0, 1), title="each new person")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def scores_markdown(s: dict) -> list[str]:
    """Summary line, per-class table and collapse flags of a `metrics.scores` dict."""
    lines = [f"macro-F1 **{s['macro_f1']:.3f}**, balanced accuracy {s['balanced_accuracy']:.3f}, "
             f"accuracy {s['accuracy']:.3f} over {s['windows']} windows", "",
             "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, c in s["per_class"].items():
        flag = " **(zero recall)**" if name in s["collapsed_classes"] else ""
        lines.append(f"| {name}{flag} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} "
                     f"| {c['support']} |")
    lines.append("")
    if s["collapsed_classes"]:
        lines.append(f"**Collapsed classes (zero recall):** {', '.join(s['collapsed_classes'])}")
    if s["collapsed"]:
        d = s["dominant_prediction"]
        lines.append(f"**Collapse:** the model predicts {d['label']} for {d['share']:.0%} of windows")
    if not s["collapsed_classes"] and not s["collapsed"]:
        lines.append("No collapse: every class is recalled, no class takes over 95% of predictions.")
    return lines


def write_report(out: Path, test_scores: dict, histories: dict[str, dict], title: str,
                 metrics: dict | None = None) -> Path:
    """Write report.md with its plots into `out`."""
    out = Path(out)
    plot_confusion(out / CONFUSION_PNG, test_scores["confusion"], test_scores["labels"])
    lines = [f"# {title}", ""]
    if metrics:
        split = metrics["split"]
        lines += [f"Dataset `{metrics['dataset']}`; subjects train {', '.join(split['train'])}; "
                  f"validation {', '.join(split['val'])}; test {', '.join(split['test'])}.", ""]
        phases = metrics.get("phases", {})
        if phases:
            lines += ["| phase | result |", "|---|---|"]
            for name, r in phases.items():
                if "epochs" in r:
                    chosen = (f"kept epoch {r.get('kept_epoch', r['best_epoch'])} (best validation "
                              f"macro-F1 {r['best_val_macro_f1']:.3f} at epoch {r['best_epoch']})"
                              if r["best_val_macro_f1"] is not None else "the folds' choice")
                    detail = f"{r['epochs']} epochs, {chosen}, weights {r['weight_mode']}"
                elif r.get("skipped"):
                    detail = "skipped"
                else:
                    detail = (f"passed={r['passed']}: training accuracy {r['train_accuracy']:.2f}, "
                              f"validation balanced accuracy {r['val_balanced_accuracy']:.2f}")
                lines.append(f"| {name} | {detail} |")
            lines.append("")
        cv = metrics.get("cross_validation")
        if cv:
            lines += [f"Cross-validation over {len(cv['folds'])} subject folds: validation macro-F1 "
                      f"{cv['val_macro_f1_mean']:.3f} ± {cv['val_macro_f1_std']:.3f}; the model was "
                      "then trained on every non-test subject for "
                      + ", ".join(f"{n} epochs ({p})" for p, n in cv["epochs"].items()) + ".", "",
                      "| fold | validation subjects | macro-F1 | best epochs |", "|---|---|---:|---|"]
            lines += [f"| {i} | {', '.join(f['val_subjects'])} | {f['val_macro_f1']:.3f} | "
                      + ", ".join(f"{p} {n}" for p, n in f["best_epochs"].items()) + " |"
                      for i, f in enumerate(cv["folds"], start=1)]
            lines.append("")
        if "cnn_head_test" in metrics:
            h = metrics["cnn_head_test"]
            lines += [f"Phase-2 CNN head alone on the test subjects: macro-F1 {h['macro_f1']:.3f}, "
                      f"balanced accuracy {h['balanced_accuracy']:.3f}.", ""]
    lines += ["## Test", ""] + scores_markdown(test_scores)
    lines += ["", f"![confusion matrix]({CONFUSION_PNG})", ""]
    if test_scores.get("per_subject"):
        validation = (metrics or {}).get("validation_macro_f1")
        plot_subjects(out / SUBJECTS_PNG, test_scores["per_subject"], test_scores["macro_f1"],
                      validation)
        lines += ["## Each test subject", "", "| subject | macro-F1 | balanced accuracy | windows |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {name} | {v['macro_f1']:.3f} | {v['balanced_accuracy']:.3f} | {v['windows']} |"
                  for name, v in test_scores["per_subject"].items()]
        lines += ["", f"![test macro-F1 per subject]({SUBJECTS_PNG})", ""]
    if any("val_macro_f1" in h for h in histories.values()):
        plot_curves(out / CURVES_PNG, histories)
        lines += [f"![learning curves]({CURVES_PNG})", ""]
    path = out / REPORT_MD
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
