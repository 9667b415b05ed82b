"""report.md: the first screen (which code and recipe, the headline against the held-out real
row, the verdict, every variant's numbers), then the details: pairwise tests, figures, attribute
coverage, data provenance and the environment every run trained in."""
from __future__ import annotations

import yaml

from rnngan.comparison import REAL
from rnngan.config import Params, split_variant
from rnngan.report.attributes import attribute_lines
from rnngan.report.figures import SAMPLES_FIGURE, samples_file
from rnngan.report import table
from rnngan.report.formatting import NA, param_text, variant_name, with_interval
from rnngan.report.formatting import fmt as _fmt
from rnngan.report.values import rounded, shown
from rnngan.report.verdict import (TESTED, and_list, code_list, pairs_note, pairs_table, recall_reading, table_cell,
                                   tested_metrics, tiers_text, verdict_lines)


REPRODUCIBLE = ("Bit-identical numbers need the same hardware and software: the same commit, params and "
                "packages on another CPU (or at another thread count) round differently, and a recurrent GAN "
                "amplifies that like a new seed. Replicates over `train.seeds` measure that variation; only "
                "differences that hold across them are ranked.")


RECIPE_SECTIONS = ("train", "model", "augment")
# The all-variants table shows these means with the seeds' standard deviation.
SPREAD_KEYS = ("precision", "recall", "density", "coverage")
ATTRIBUTE_SPREAD_KEYS = ("attr_tv", "attr_modes")


def recipe(params: Params) -> list[tuple[str, object, object]]:
    """Every `train`/`model`/`augment` param that differs from the code's default (rnngan/config.py),
    as (dotted key, value, default): what a reader needs to tell one recipe's report from another's."""
    defaults = Params()
    out = []
    for section in RECIPE_SECTIONS:
        ours, theirs = getattr(params, section), getattr(defaults, section)
        for name in type(ours).model_fields:
            if getattr(ours, name) != getattr(theirs, name):
                out.append((f"{section}.{name}", getattr(ours, name), getattr(theirs, name)))
    return out


class _FlowLists(yaml.SafeDumper):
    """YAML with lists on one line (`seeds: [0, 1, 2]`), as params.yaml writes short ones."""


_FlowLists.add_representer(list, lambda dumper, data: dumper.represent_sequence(
    "tag:yaml.org,2002:seq", data, flow_style=True))


def render_origin(params: Params, code: dict) -> list[str]:
    """Which code and which recipe made this report: the commit (rnngan.environment.code_version),
    the params that differ from the code's defaults, the three sections in full folded below."""
    if code["commit"] is None:
        built = f"Built from code whose commit was not recorded ({code['reason']})"
    else:
        built = f"Built from commit `{code['commit'][:12]}`"
        changed = code["changed"]
        if changed:
            shown = and_list([f"`{c}`" for c in changed[:5]] + ([f"{len(changed) - 5} more"] if len(changed) > 5 else []))
            built += f" with uncommitted changes to {len(changed)} code file{'s' if len(changed) > 1 else ''} ({shown})"
    diff = recipe(params)
    if diff:
        how = (f"the code's defaults except {len(diff)} param{'s' if len(diff) > 1 else ''}: "
               + "; ".join(f"`{k}` {param_text(v)} (default {param_text(d)})" for k, v, d in diff))
    else:
        how = "the code's defaults (rnngan/config.py) for every `train`, `model` and `augment` param"
    sections = {name: getattr(params, name).model_dump() for name in RECIPE_SECTIONS}
    return [f"{built}. Recipe: {how}.", "",
            "<details><summary>The recipe in full: every train, model and augment param as the stages read "
            "it</summary>", "", "```yaml", yaml.dump(sections, Dumper=_FlowLists, sort_keys=False).rstrip(), "```", "",
            "</details>", ""]



def render_markdown(params: Params, comparison: dict, runs: dict[str, dict], real_metrics: dict, summary: dict,
                    stats: dict, ref_meta: dict, provenance: dict, env: dict, attributes: dict, code: dict) -> str:
    """report.md: GitHub markdown, images as relative links under figures/, no raw HTML but
    <details> (which GitHub keeps). The first screen: which commit and recipe, the headline
    against the held-out real row, the verdict over every tested metric, every variant's numbers
    beside its parameter counts."""
    head = params.model.cell
    variants = comparison["variants"]
    seeds = comparison["seeds"]
    measured = comparison["training_variation_measured"]
    with_attributes = comparison["attributes"]["measured"]
    conf = f"{100 * params.metrics.confidence:.0f}%"
    h, real = summary, summary["real"]
    pv = comparison["per_variant"]
    real_m = comparison["real"]
    lines = [
        f"# rnngan report: `{head}` on {params.data.dataset} {params.data.image_size}×{params.data.image_size}",
        "",
        *render_origin(params, code),
        f"| | FID ↓ | KID ×10⁻³ ↓ | precision ↑ | recall ↑ | coverage ↑ | G / D parameters | training |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| headline `{head}`, mean of {len(seeds)} seed{'s' if len(seeds) > 1 else ''} [{conf} "
        f"{'interval over seeds' if measured else 'bootstrap interval'}] | {table_cell(h, 'fid', 2)} | "
        f"{table_cell(h, 'kid', 1, 1000)} | {_fmt(h['precision'], 3)} | {_fmt(h['recall'], 3)} | "
        f"{_fmt(h['coverage'], 3)} | {h['params_g']:,} / {h['params_d']:,} | "
        f"{pv[head]['steps']} steps, {_fmt(h['train_seconds'], 0)} s a seed |",
        f"| held-out real images (the floor / ceiling) | {table_cell(real, 'fid', 2)} | {table_cell(real, 'kid', 1, 1000)} | "
        f"{_fmt(real['precision'], 3)} | {_fmt(real['recall'], 3)} | {_fmt(real['coverage'], 3)} | | |",
        "",
        *verdict_lines(head, comparison),
    ]
    reading = recall_reading(comparison)
    if reading:
        lines.append(reading)
    lines.append("")
    if not measured:
        lines += [f"> **Training variation was not measured** (one seed, `train.seeds: {seeds}`): every ranking "
                  "here is provisional. A new seed, or the same seed on another CPU, moves a recurrent GAN's "
                  "FID by points; run three or more seeds before reading a verdict.", ""]
    pairs = [v for v in variants if split_variant(v)[0] != split_variant(v)[1]]
    lines += [
        "## All variants", "",
        "Means over seeds "
        + (f"[{conf} interval: Student's t on the logarithms of the per-seed values, back-transformed, so it stays "
           "above zero and follows the skew of a collapsed seed; with one seed, that run's bootstrap interval]"
           if measured else f"[{conf} bootstrap interval of the one run]")
        + "; ± is the seed standard deviation; G / D params: the generator's and the discriminator's. "
        + ("Parameter counts are matched to the LSTM variant's within 5% (`model.match_params: true`)."
           if params.model.match_params else
           "Parameter counts are as configured, not matched (`model.match_params: false`): weigh the comparison "
           "by them.")
        + (f" A pair `<G>+<D>` ({code_list(pairs)}) is the first kind's generator trained against the second's "
           "discriminator." if pairs else ""),
        "",
    ]
    cols = table.columns("bootstrap", *(("attributes",) if with_attributes else ()))
    rows = []
    for v in variants:
        s = pv[v]["summary"]
        values = {**summary["cells"][v], "fid_bootstrap_width": s["fid"]["bootstrap_width"],
                  **{f"{k}_std": s[k]["std"] for k in (*SPREAD_KEYS, *(ATTRIBUTE_SPREAD_KEYS if with_attributes else ()))}}
        rows.append([f"**{variant_name(v)}**" if v == head else variant_name(v), *table.cells(values, cols, NA)])
    real_width = real_m["fid_interval"][1] - real_m["fid_interval"][0]
    below_zero = any(min(r["kid"], *r["kid_interval"]) < 0 for r in [*comparison["runs"].values(), real_m])
    rows.append(["*held-out real*", *table.cells({**real, "fid_bootstrap_width": real_width}, cols, "")])
    lines += table.markdown(["variant", *(c.head for c in cols)], rows, range(1, len(cols) + 1))
    lines += ["", "FID and KID: lower is better; precision (fidelity), recall (diversity), density and coverage on "
              f"k-NN manifolds with k = {params.metrics.nearest_k}: higher is better"
              + ("; joint modes: the share of the real attribute combinations produced (see Attributes)"
                 if with_attributes else "")
              + f". The held-out real row is {real_m['count']:,} real images the reference never saw, scored exactly "
              "like a run's samples: what a perfect generator would get at this sample size. "
              + ("KID estimates MMD², which is never negative: an estimate below zero (images the features cannot "
                 "tell from the reference at this sample size) is shown as 0. " if below_zero else "")
              + "*FID seed sd* against "
              "*bootstrap width* (the mean width of each run's interval when its samples are redrawn): how much more "
              "a new seed moves FID than new samples do. W1 grey: Wasserstein distance between grey-level "
              "histograms, in grey levels. Spectral: mean |log10 ratio| of the radially averaged power spectra, "
              "in decades.", "",
              f"Seeds (`train.seeds`) {', '.join(map(str, seeds))}: each seed is one training run of every variant "
              "(initialisation, batch order, noise), on the same data (`seed`), reference and sample noise. Verdicts "
              "rest on the seed-to-seed spread (Welch's t-test on the per-seed values, Holm-adjusted over the pairs); "
              "the within-run bootstrap over the samples is the smaller, sample-noise part. "
              f"{summary['cells'][head]['seeds']} × {runs[pv[head]['runs'][0]]['metrics']['count']:,} generated "
              f"against {ref_meta['count']:,} real training images, `{params.metrics.features}` features "
              f"({ref_meta['feature_dim']}-d)."
              + (" `randinit` is a fixed-seed random network: these FID/KID values compare runs of this project, not "
                 "published Inception FIDs." if params.metrics.features == "randinit" else ""), "",
              "Per-seed values (points; the black bar is the mean, the dashed line the held-out real row):", "",
              "![per-seed FID, KID, recall and coverage](figures/seeds.png)", "",
              "<details><summary>Every run</summary>", "",
              f"| run | FID [{conf} bootstrap] | KID ×10⁻³ [{conf} bootstrap] | precision | recall | density | "
              "coverage | train s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in comparison["runs"].items():
        lines.append(
            f"| `{name}` | {with_interval(*map(shown, (r['fid'], *r['fid_interval'])), 2)} | "
            f"{with_interval(*map(shown, (r['kid'], *r['kid_interval'])), 1, 1000)} | {_fmt(r['precision'], 3)} | "
            f"{_fmt(r['recall'], 3)} | {_fmt(r['density'], 3)} | {_fmt(r['coverage'], 3)} | "
            f"{_fmt(r['train_seconds'], 0)} |")
    lines += ["", "</details>", ""]

    lines += ["## Samples", "",
              "The same noise (`sample.seed`) for every run, from its EMA generator, at one pixel per generated pixel "
              "(JPEG at quality 85, no chroma subsampling, to keep the report small): held-out real images first, "
              "then each variant's median-FID seed.", "",
              f"![samples: held-out real and every variant's median seed](figures/{SAMPLES_FIGURE})", "",
              "<details><summary>Every seed's samples</summary>", "",
              "**held-out real**", "", f"![held-out real](figures/{samples_file(REAL)})", ""]
    for v in variants:
        lines += [f"**{variant_name(v)}**: " + " · ".join(f"seed {runs[n]['seed']}" + (" (median)" if n == pv[v]["median_run"] else "")
                                                          for n in pv[v]["runs"]), ""]
        lines += [" ".join(f"![{n}](figures/{samples_file(n)})" for n in pv[v]["runs"]), ""]
    lines += ["</details>", ""]

    lines += ["## Which variant is better", ""]
    for key, label, digits, scale in TESTED:
        test = comparison["tests"][key]
        lines.append(f"- **{label}**, best first: {tiers_text(test['tiers'])}")
    lines += ["", "A new tier starts only where a pair's test is significant"
              + (" at the seed level; the sample-noise test is shown beside it, and does not rank." if measured else
                 ": with one seed only the sample-noise test exists, so these tiers are provisional."), ""]
    for key, label, digits, scale in TESTED[:2]:
        lines += pairs_table(comparison, key, label, digits, scale) + [""]
    lines += [pairs_note(comparison), ""]
    others = tested_metrics(comparison)[2:]
    lines += [f"<details><summary>Pairs on {and_list([label for _, label, _, _ in others])}</summary>", ""]
    for key, label, digits, scale in others:
        lines += pairs_table(comparison, key, label, digits, scale) + [""]
    lines += ["</details>", ""]

    lines += attribute_lines(comparison, attributes, tiers_text)

    medians = {v: runs[pv[v]["median_run"]]["metrics"] for v in variants}
    lines += ["## Image statistics", "",
              "Each variant's median-FID seed against the real images: grey-level histogram (JS in bits, KS), hue "
              "(chroma-weighted; circular W1 in degrees), saturation (W1 in levels).", "",
              "| run | JS grey | KS grey | W1 hue (°) | W1 saturation |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, d in {**{pv[v]["median_run"]: medians[v] for v in variants}, "held-out real": real_metrics}.items():
        lines.append(f"| {name} | {_fmt(d['histogram_distances']['grey']['js'], 4)} | "
                     f"{_fmt(d['histogram_distances']['grey']['ks'], 3)} | {_fmt(rounded(d['hsv_distances']['hue']['w1'], 6), 1)} | "
                     f"{_fmt(rounded(d['hsv_distances']['saturation']['w1'], 6), 2)} |")
    lines += ["", "Histograms of generated images (lines) over the reference images' (grey fill), the held-out real "
              "images dotted:", "",
              "![grey and RGB histograms](figures/histograms.png)", "",
              "![hue and saturation histograms](figures/hsv.png)", "",
              "Radially averaged power spectra (upsampling artefacts show as high-frequency bumps):", "",
              "![power spectra](figures/spectra.png)", ""]

    lines += ["## Training", "",
              "Losses and D's mean outputs per logged step (`train.log_every`): per variant the mean over its seeds, "
              "the band their 95% interval; `dvc plots diff main` overlays every run across revisions.", "",
              "![losses](figures/losses.png)", ""]
    lines += render_provenance(params, stats, ref_meta, provenance, real_metrics)
    lines += render_environment(comparison, env)
    return "\n".join(lines)



def render_provenance(params: Params, stats: dict, ref_meta: dict, provenance: dict, real_metrics: dict) -> list[str]:
    counts = ", ".join(f"{k} {v:,}" for k, v in stats.get("counts", {}).items())
    skipped = stats.get("skipped", [])
    lines = ["## Data provenance", "",
             f"- **dataset** `{params.data.dataset}`: {provenance['origin']}",
             f"- **prepared** {stats.get('total', 0):,} images at {params.data.image_size} px, crop "
             f"`{stats.get('crop', '?')}` ({counts}); **{len(skipped)} skipped**"
             + (f", {stats['left_out_by_limit']:,} left out by `data.limit`" if stats.get("left_out_by_limit") else ""),
             f"- **reference statistics**: {ref_meta['count']:,} real images of `{ref_meta['source']}`",
             f"- **held-out real row**: {real_metrics['count']:,} real images outside the reference ("
             + ", ".join(f"{k} {v:,}" for k, v in real_metrics.get("sources", {}).items()) + ")",
             "", "| source file | bytes | MD5 | checked |", "| --- | ---: | --- | --- |"]
    for f in provenance["files"]:
        lines.append(f"| `{f['name']}` | {f['bytes']:,} | `{f['md5']}` | {f['checked']} |")
    if skipped:
        lines += ["", f"<details><summary>{len(skipped)} skipped images</summary>", ""]
        lines += [f"- `{s['image']}`: {s['reason']}" for s in skipped[:200]]
        if len(skipped) > 200:
            lines.append(f"- … and {len(skipped) - 200} more (data/prepared/{params.data.dataset}/stats.json)")
        lines += ["", "</details>"]
    return lines + [""]


def _environment_key(r: dict) -> tuple:
    e = r.get("environment") or {}
    torch_build = e.get("torch", "not recorded")
    if e.get("cuda") and str(r.get("device", "")).startswith("cuda"):
        torch_build += f" (CUDA {e['cuda']}, driver {e.get('gpu_driver') or '?'})"
    isa = e.get("cpu_capability") or "not recorded"
    if e.get("cpu_flags"):
        isa += f" ({', '.join(e['cpu_flags'])})"
    blas = " ".join(x for x in (e.get("blas"), e.get("mkl")) if x) or "not recorded"
    if e.get("onednn"):
        blas += f", oneDNN {e['onednn']}"
    kernel_env = " ".join(f"{k}={v}" for k, v in sorted((e.get("kernel_env") or {}).items())) or "none"
    machine = e.get("device_name", "not recorded")
    if e.get("cpu_id") and not str(r.get("device", "")).startswith("cuda"):
        machine += f" ({e['cpu_id']})"
    return (machine, isa, blas, f"{r.get('processes', 1)} × {r.get('threads', '?')}",
            f"`{r.get('device', '?')}` {r.get('arithmetic', 'fp32')}", torch_build, kernel_env)


def render_environment(comparison: dict, env: dict) -> list[str]:
    """What trained each run, runs with the same machine and software on one row."""
    groups: dict[tuple, list[str]] = {}
    for name, r in comparison["runs"].items():
        groups.setdefault(_environment_key(r), []).append(name)
    lines = ["## Environment", "", REPRODUCIBLE, "",
             "| runs | trained on | kernels (ATen capability, CPU flags) | BLAS | processes × threads | device | torch "
             "| kernel env |", "| --- | --- | --- | --- | ---: | --- | --- | --- |"]
    for key, names in groups.items():
        shown = ", ".join(f"`{n}`" for n in names) if len(groups) > 1 else f"all {len(names)}"
        lines.append(f"| {shown} | " + " | ".join(key) + " |")
    lines += ["", "Report built with " + ", ".join(f"{k} {v}" for k, v in env["packages"].items())
              + f" on {env['platform']}.", ""]
    return lines
