"""The report's attribute section: what each generator misses, on attributes a classifier names.

Renders the compare stage's attribute numbers (comparison.json) and the attributes stage's
summary (the classifier's held-out accuracy); computes nothing.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from rnngan.report.formatting import fmt, variant_name
from rnngan.report.formatting import spread as _spread

# Tested attribute metrics as the report names them: key, label, digits.
ATTRIBUTE_TESTED = (("attr_tv", "attribute TV", 3), ("attr_modes", "joint modes produced", 3),
                    ("attr_kl", "joint KL", 3))


def attribute_lines(comparison: dict, summary: dict, tiers_text) -> list[str]:
    """The "Attributes" section: the classifier, a table per variant, tiers, the figure."""
    lines = ["## Attributes: which modes the generators miss", ""]
    if not comparison["attributes"]["measured"]:
        return lines + [f"Not measured: {comparison['attributes']['reason']}.", ""]
    modes, kept, dropped = summary["modes"], summary["kept"], summary["dropped"]
    real = comparison["real"]
    lines += [
        f"A small CNN trained on {summary['trained_on']['images']:,} labelled real training images (the reference "
        f"subset; the held-out real row never trained it) names CelebA's attributes in every image. It keeps "
        f"{len(kept)} of 40, those it recognises at balanced accuracy ≥ {summary['min_accuracy']} on the "
        f"{summary['measured_on']['images']:,} validation images; the other {len(dropped)} are dropped (constant in "
        "the data, or not recognised) and listed below.",
        "",
        "*Attribute TV*: per attribute |generated frequency − real frequency| (the total variation of the two "
        "marginals), averaged over the kept attributes; *worst* is the largest and its attribute. *Joint modes*: over "
        f"the {modes['k']} most balanced kept attributes ({', '.join(f'`{a}`' for a in modes['attributes'])}) each "
        f"image is one of {1 << modes['k']} combinations; the {modes['real_images']:,} training images hold "
        f"{modes['real_modes']} of them. *Produced*: the share of those a run's samples hit at least once; *KL*: "
        "KL(generated ‖ real) of the joint in nats (the real counts get 0.5 each, so a combination the data lacks "
        "costs a finite amount). The held-out real row, scored the same way, is the floor of TV and KL and the "
        "ceiling of produced modes at this sample size: classifier errors and sample noise, nothing a generator did.",
        "",
        "| variant | attribute TV ↓ | worst attribute (TV) | joint modes produced ↑ | joint KL ↓ |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for v in comparison["variants"]:
        pv = comparison["per_variant"][v]
        s = pv["summary"]
        runs = [comparison["runs"][n] for n in pv["runs"]]
        worst = max(runs, key=lambda r: r["attr_tv_max"])
        produced = " / ".join(str(r["attr_modes_produced"]) for r in runs)
        lines.append(f"| {variant_name(v)} | {_spread(s['attr_tv'], 3)} | {worst['attr_tv_worst']} ({fmt(worst['attr_tv_max'], 3)}) | "
                     f"{_spread(s['attr_modes'], 3)} ({produced} of {modes['real_modes']}) | "
                     f"{_spread(s['attr_kl'], 3)} |")
    lines.append(f"| *held-out real* | {fmt(real['attr_tv'], 3)} | {real['attr_tv_worst']} ({fmt(real['attr_tv_max'], 3)}) "
                 f"| {fmt(real['attr_modes'], 3)} ({real['attr_modes_produced']} of {modes['real_modes']}) | "
                 f"{fmt(real['attr_kl'], 3)} |")
    lines += ["", "Means over seeds ± their standard deviation; in brackets, each seed's count of modes produced.", ""]
    for key, label, _ in ATTRIBUTE_TESTED:
        lines.append(f"- **{label}**, best first: {tiers_text(comparison['tests'][key]['tiers'])}")
    lines += ["", "Attribute frequencies, real (training split, ground truth) and held-out real (classified) against "
              "each variant's mean over seeds (classified); below, each variant's difference from the real "
              "frequency:", "", "![attribute frequencies](figures/attributes.png)", "",
              "<details><summary>The classifier's held-out accuracy per attribute</summary>", "",
              "| attribute | real frequency | balanced accuracy (val) | accuracy (val) | kept |",
              "| --- | ---: | ---: | ---: | --- |"]
    for name, e in summary["per_attribute"].items():
        lines.append(f"| {name} | {fmt(e['real_frequency'], 3)} | {fmt(e.get('balanced_accuracy'), 3)} | "
                     f"{fmt(e.get('accuracy'), 3)} | {'yes' if name in kept else 'no: ' + dropped[name]} |")
    return lines + ["", "</details>", ""]


def attributes_figure(comparison: dict, summary: dict, out: Path) -> None:
    """Two heatmaps over the kept attributes: frequencies (real, held-out real, every variant's
    mean over seeds), and each row's difference from the real frequency."""
    from rnngan.report.figures import pyplot, save_plot

    plt, sns = pyplot()
    kept = summary["kept"]
    rows = {"real (train)": summary["real_frequency"], "held-out real": comparison["real"]["attr_frequency"]}
    rows.update({v: comparison["per_variant"][v]["attribute_frequency"] for v in comparison["variants"]})
    freq = pd.DataFrame({name: [r[a] for a in kept] for name, r in rows.items()}, index=kept).T
    # note: rounded first and + 0.0, so that a difference below half a cent prints "+0.00", not "-0.00"
    diff = (freq.drop(index="real (train)") - freq.loc["real (train)"]).round(2) + 0.0
    width = max(8.0, 0.42 * len(kept) + 2.5)
    fig, axes = plt.subplots(2, 1, figsize=(width, 0.45 * (2 * len(freq) + 1) + 2.4),
                             gridspec_kw={"height_ratios": [len(freq), len(diff)]})
    sns.heatmap(freq, ax=axes[0], vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", annot_kws={"size": 7},
                cbar_kws={"label": "frequency"})
    axes[0].set_title("attribute frequency")
    sns.heatmap(diff, ax=axes[1], vmin=-0.5, vmax=0.5, cmap="RdBu_r", center=0, annot=True, fmt="+.2f",
                annot_kws={"size": 7}, cbar_kws={"label": "minus real"})
    axes[1].set_title("difference from the real frequency")
    axes[0].set_xticks([])          # the same columns as below, named once
    axes[1].set_xticklabels([t.get_text().replace("_", " ") for t in axes[1].get_xticklabels()], rotation=60,
                            ha="right", fontsize=8)
    for ax in axes:
        ax.tick_params(axis="y", labelsize=8, rotation=0)
    fig.tight_layout()
    save_plot(fig, out)
    plt.close(fig)
