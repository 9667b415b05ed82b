"""The report's first screen: which commit and recipe, the verdict over every tested metric,
every variant's numbers beside its parameter counts; and the whole page's numbers: inside their
metric's range, no "-0.0", no paragraph twice. On synthetic runs whose numbers the tests choose."""
import json
import math
import re
import subprocess

import pytest

from rnngan.comparison import compare_runs
from rnngan.config import parse_params
from rnngan.environment import packages
from rnngan.report.markdown import recipe, render_markdown, render_origin
from rnngan.report.stage import code_version
from rnngan.report.values import metrics_json
from rnngan.report.verdict import recall_reading, verdict_lines
from runs import attributes_of, params_for, write_runs

SUMMARY = {"available": True, "kept": ["Male", "Smiling"], "dropped": {}, "min_accuracy": 0.85,
           "trained_on": {"images": 500}, "measured_on": {"images": 100},
           "real_frequency": {"Male": 0.5, "Smiling": 0.5},
           "per_attribute": {"Male": {"real_frequency": 0.5, "balanced_accuracy": 0.97, "accuracy": 0.97},
                             "Smiling": {"real_frequency": 0.5, "balanced_accuracy": 0.95, "accuracy": 0.96}},
           "modes": {"attributes": ["Male", "Smiling"], "k": 2, "real_images": 800, "real_modes": 8}}
CODE = {"commit": "0123456789abcdef0123456789abcdef01234567", "changed": [], "reason": None}


def default_run_like(tmp_path):
    """Numbers shaped like the default run's: FIDs not separable at three seeds (one collapsed rnn
    seed), KIDs near zero, lstm and gru recall at zero, DCGAN far ahead on joint modes, and the
    real row's KID a hair below zero."""
    fids = {"rnn": [6.61, 20.85, 10.65], "lstm": [6.70, 8.81, 9.81], "dcgan": [14.52, 10.56, 7.86]}
    models, metrics = write_runs(tmp_path, fids, real_fid=0.13)
    modes = {"rnn": [27, 31, 35], "lstm": [29, 33, 40], "dcgan": [76, 88, 93]}
    recall = {"rnn": [0.134, 0.0, 0.0], "lstm": [0.008, 0.0, 0.0], "dcgan": [0.04, 0.131, 0.15]}
    for v in fids:
        for seed in range(3):
            path = metrics / f"{v}-{seed}.json"
            m = json.loads(path.read_text())
            m["recall"] = recall[v][seed]
            m["attributes"] = attributes_of(0.3 - modes[v][seed] / 400, modes[v][seed], real_modes=96)
            path.write_text(json.dumps(m))
    real = json.loads((metrics / "real.json").read_text())
    real["kid"], real["kid_interval"] = -0.00002, [-0.0003, 0.0008]
    real["attributes"] = attributes_of(0.01, 95, real_modes=96)
    (metrics / "real.json").write_text(json.dumps(real))
    return models, metrics


def render(tmp_path, variants=("rnn", "lstm", "dcgan"), params=None, code=CODE):
    models, metrics = default_run_like(tmp_path)
    params = params or params_for(list(variants), [0, 1, 2], cell="lstm")
    c = compare_runs(params, models, metrics)
    runs = {n: {"variant": r["variant"], "seed": r["seed"],
                "metrics": json.loads((metrics / f"{n}.json").read_text())} for n, r in c["runs"].items()}
    real = json.loads((metrics / "real.json").read_text())
    md = render_markdown(params, c, runs, real, metrics_json(params, c), {"counts": {"train": 100}, "total": 100},
                         {"count": 100, "feature_dim": 512, "source": "train"}, {"origin": "drawn", "files": []},
                         packages(), SUMMARY, code)
    return md, c


def first_screen(md: str) -> str:
    """What a reader sees before scrolling: everything above the second heading."""
    return md.split("\n## ", 1)[0]


def test_the_verdict_covers_every_tested_metric_attribute_modes_included(tmp_path):
    _, c = render(tmp_path)
    lines = verdict_lines("lstm", c)
    text = "\n".join(lines)
    # the one difference the seed-level tests call: DCGAN produces more joint modes than both cells
    modes = next(line for line in lines if line.startswith("- **joint modes produced**"))
    assert "(higher is better): `dcgan` 0.892 ± 0.091 is better than" in modes
    assert "`lstm`" in modes and "`rnn`" in modes and "Welch tests over 3 seeds, Holm-adjusted, p" in modes
    # every other metric is named as not separated, each with the seeds its closest pair would need
    rest = next(line for line in lines if line.startswith("- **No variant is separated**"))
    for label in ("FID", "KID ×10⁻³", "precision", "recall", "density", "coverage"):
        assert label in rest, label
    assert re.search(r"FID \d+ \(`\w+`, `\w+`\)", rest), rest
    tested = set(c["tests"])
    assert tested == {"fid", "kid", "precision", "recall", "density", "coverage", "attr_tv", "attr_modes", "attr_kl"}
    for label in ("attribute TV", "joint KL"):
        assert label in text


def test_near_zero_recall_gets_a_reading_and_healthy_recall_none(tmp_path):
    _, c = render(tmp_path)
    line = recall_reading(c)
    # rnn's mean recall is 0.045 (one seed 0.134, two 0.000), DCGAN's 0.107
    assert line.startswith("- **Recall near zero** (`rnn` 0.045 and `lstm` 0.003; held-out real images 0.950): ")
    assert "k-NN manifold" in line and "joint modes" in line
    for v in c["variants"]:
        c["per_variant"][v]["summary"]["recall"]["mean"] = 0.5
    assert recall_reading(c) is None


def test_the_first_screen_names_the_commit_the_recipe_and_every_variants_parameter_counts(tmp_path):
    params = parse_params({"model": {"variants": ["rnn", "lstm", "dcgan"], "cell": "lstm", "hidden": 64},
                           "train": {"seeds": [0, 1, 2], "steps": 4000}})
    md, c = render(tmp_path, params=params)
    top = first_screen(md)
    assert "Built from commit `0123456789ab`." in top
    assert ("Recipe: the code's defaults except 3 params: `train.steps` 4000 (default 650); `model.variants` "
            "[rnn, lstm, dcgan] (default [rnn, lstm, gru, sru, dcgan]); `model.hidden` 64 (default 128).") in top
    assert "```yaml\ntrain:\n  steps: 4000\n" in top and "augment:\n" in top       # the sections, folded
    assert "- **joint modes produced**" in top and "- **Recall near zero**" in top
    table = md.split("## All variants", 1)[1]
    for v in ("rnn", "lstm", "dcgan"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {v} |") or line.startswith(f"| **{v}** |"))
        assert re.match(r"\| \*{0,2}\w+\*{0,2} \| 1,000 / 500 \| 3 \| \d+\.\d\d \[", row), row   # params next to numbers


def test_the_origin_says_what_differs_from_the_commit_and_when_it_was_not_recorded():
    params = parse_params({})
    assert recipe(params) == []
    dirty = {"commit": CODE["commit"], "changed": [f"rnngan/m{i}.py" for i in range(7)], "reason": None}
    line = render_origin(params, dirty)[0]
    assert line.startswith("Built from commit `0123456789ab` with uncommitted changes to 7 code files (`rnngan/m0.py`, ")
    assert "and 2 more)" in line and "every `train`, `model` and `augment` param" in line
    absent = {"commit": None, "changed": [], "reason": "git could not run (FileNotFoundError)"}
    assert render_origin(params, absent)[0].startswith(
        "Built from code whose commit was not recorded (git could not run (FileNotFoundError)).")


def test_code_version_reads_git_and_never_fails_without_it(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "rnngan").mkdir(parents=True)
    (repo / "rnngan" / "a.py").write_text("x = 1\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env={**env, "PATH": "/usr/bin:/bin"})
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert code_version(repo) == {"commit": head, "changed": [], "reason": None}
    (repo / "rnngan" / "a.py").write_text("x = 2\n")
    (repo / "rnngan" / "new.py").write_text("")
    (repo / "notes.txt").write_text("not code")
    assert code_version(repo)["changed"] == ["rnngan/a.py", "rnngan/new.py"]
    outside = code_version(tmp_path)
    assert outside["commit"] is None and "not a git repository" in outside["reason"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))          # no git at all
    assert code_version(repo) == {"commit": None, "changed": [], "reason": "git could not run (FileNotFoundError)"}


def signed_zeros(text: str) -> list[str]:
    """Numbers printed with a minus sign that are zero: "-0.0", "-0.000", "-0"."""
    return [m.group(0) for m in re.finditer(r"(?<![\w.\-])-\d+(?:\.\d+)?(?![\w.])", text) if float(m.group(0)) == 0]


def intervals(text: str, label: str) -> list[tuple[float, float, float]]:
    """Every 'value [lo, hi]' in the table columns under `label` (FID or KID) of the markdown."""
    out = []
    for block in re.findall(r"((?:^\|.*\|\n)+)", text, re.M):
        rows = [[c.strip() for c in r.strip().strip("|").split("|")] for r in block.strip().splitlines()]
        columns = [i for i, h in enumerate(rows[0]) if h.startswith(label)]
        for row in rows[2:]:
            for i in columns:
                m = re.fullmatch(r"(-?[\d.]+) \[(-?[\d.]+), (-?[\d.]+)\]", row[i])
                if m:
                    out.append(tuple(float(x) for x in m.groups()))
    return out


def paragraphs_twice(md: str) -> list[str]:
    seen, twice = set(), []
    for p in (p.strip() for p in md.split("\n\n")):
        if len(p) > 80 and not p.startswith(("|", "![", "<")):
            if p in seen:
                twice.append(p[:80])
            seen.add(p)
    return twice


def test_the_whole_report_has_no_signed_zero_no_paragraph_twice_and_no_interval_outside_its_range(tmp_path):
    md, _ = render(tmp_path)
    assert signed_zeros(md) == []
    assert paragraphs_twice(md) == []
    assert md.count("Bit-identical numbers need the same hardware and software") == 1
    fid, kid = intervals(md, "FID"), intervals(md, "KID")
    assert len(fid) >= 3 + 1 + 9 and len(kid) >= 3 + 1 + 9        # the variants, the real row, every run
    for value, lo, hi in fid + kid:
        assert 0 <= value and 0 <= lo <= hi, (value, lo, hi)
    assert "| *held-out real* |  |  | 0.13 [" in md and "| 0.0 [0.0, 0.8] |" in md      # KID -0.00002: no sign
    assert "an estimate below zero (images the features cannot tell from the reference" in md


def test_a_kid_estimate_below_zero_is_shown_as_zero_inside_its_interval(tmp_path):
    md, c = render(tmp_path)
    c["real"]["kid"] = -0.0061           # the tiny pipeline's held-out row: "-6.1 [0.0, 20.7]" before
    runs_table = [v for _, v, _ in intervals(md, "KID")]
    assert min(runs_table) >= 0
    summary = metrics_json(params_for(["rnn", "lstm", "dcgan"], [0, 1, 2], cell="lstm"), c)
    assert summary["real"]["kid"] == 0.0 and summary["real"]["kid_lo"] == 0.0 and summary["real"]["kid_hi"] > 0


def test_the_signed_zero_finder_finds_what_it_must_and_nothing_else():
    assert signed_zeros("KID -0.0 [-0.3, 0.8], t -0.00 (2.0), -0 and -0.1") == ["-0.0", "-0.00", "-0"]
    assert signed_zeros("2015-12-05 k-NN a − b lstm-0 sha-0 10^-0.5x") == []


def test_pair_variants_say_which_network_is_the_generator(tmp_path):
    models, metrics = write_runs(tmp_path, {"lstm": [9.0, 10.0], "lstm+dcgan": [20.0, 22.0], "dcgan+lstm": [8.0, 9.0]})
    params = params_for(["lstm", "lstm+dcgan", "dcgan+lstm"], [0, 1], cell="lstm")
    c = compare_runs(params, models, metrics)
    runs = {n: {"variant": r["variant"], "seed": r["seed"],
                "metrics": json.loads((metrics / f"{n}.json").read_text())} for n, r in c["runs"].items()}
    md = render_markdown(params, c, runs, json.loads((metrics / "real.json").read_text()), metrics_json(params, c),
                         {}, {"count": 100, "feature_dim": 8, "source": "train"}, {"origin": "x", "files": []},
                         packages(), {"available": False}, CODE)
    table = md.split("## All variants", 1)[1]
    assert "| lstm+dcgan (G lstm, D dcgan) | 1,000 / 500 |" in table and "| dcgan+lstm (G dcgan, D lstm) |" in table
    assert "A pair `<G>+<D>` (`lstm+dcgan`, `dcgan+lstm`) is the first kind's generator trained against" in table
    assert "**lstm+dcgan (G lstm, D dcgan)**: seed 0" in md            # every seed's samples


@pytest.mark.parametrize("seeds", [[0], [0, 1, 2]])
def test_one_seed_or_many_the_verdict_lines_are_plain_sentences(tmp_path, seeds):
    models, metrics = write_runs(tmp_path, {"rnn": [10.0, 10.5, 11.0][:len(seeds)], "lstm": [20.0, 21.0, 20.5][:len(seeds)]})
    c = compare_runs(params_for(["rnn", "lstm"], seeds), models, metrics)
    lines = verdict_lines("rnn", c)
    assert lines[0].startswith("- **FID** (lower is better): `rnn` 10")
    if len(seeds) == 1:
        assert "the sample bootstrap of one seed: provisional" in lines[0]
        assert lines[-1] == "- Not tested with one seed (no within-run bootstrap): precision, recall, density and coverage."
    assert all(line.endswith(".") for line in lines) and not any(math.isnan(0) for _ in lines)
