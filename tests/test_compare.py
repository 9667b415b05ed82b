"""`rnngan compare`: DVC experiments and revisions in the report's table, from `dvc exp show --json`.

The fixture is built in code in the exact shape DVC 3.67 prints (observed on a real project with
queued, finished, failed and workspace-run experiments): a list of baseline states, the workspace
first; each `{rev, name, data, error, experiments}`; `data.params`/`data.metrics` keyed by file,
each `{"data": ...}` or `{"error": {"type", "msg"}}`; experiments as ranges
`{revs: [state], executor: null | {state, name, local}, name}`.
"""
import copy
import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rnngan import experiments as cmp
from rnngan.cli import app

runner = CliRunner()
METRICS = "reports/metrics.json"

PARAMS = {"seed": 0,
          "data": {"dataset": "synthfaces", "source": None, "image_size": 32},
          "model": {"cell": "lstm", "variants": ["rnn", "lstm", "gru"], "hidden": 128},
          "metrics": {"features": "randinit", "bootstrap": 100, "confidence": 0.95}}


def cell_values(fid, lo, hi, kid=0.04, **extra):
    v = {"fid": fid, "fid_lo": lo, "fid_hi": hi, "kid": kid, "kid_lo": kid - 0.005, "kid_hi": kid + 0.005,
         "precision": 0.55, "recall": 0.02, "density": 0.2, "coverage": 0.07, "spectral_distance": 0.07,
         "params_g": 611696, "params_d": 233377, "train_seconds": 143.9, "images_per_s": 289.1,
         "w1_grey": 12.17, "js_grey": 0.044, "ks_grey": 0.147, "fid_tier": 2, "kid_tier": 2,
         "fid_std": 0.4, "kid_std": 0.004, "seeds": 3}
    v.update(extra)
    return v


def metrics_file(head, cells, **top):
    """reports/metrics.json as the report stage writes it: the headline at the top, all under
    cells, intervals over 3 seeds."""
    return {"cell": head, "dataset": "synthfaces", "image_size": 32, "features": "randinit", "interval": "seeds",
            **cells[head], **top, "cells": cells}


RUN = {"rnn": cell_values(11.15, 10.56, 11.91, fid_tier=3), "lstm": cell_values(9.30, 8.76, 9.90),
       "gru": cell_values(7.15, 6.84, 7.40, kid=0.015, fid_tier=1, kid_tier=1)}


def with_params(**overrides):
    p = copy.deepcopy(PARAMS)
    for key, value in overrides.items():
        section, name = key.split("__")
        p[section][name] = value
    return p


def state(rev, name=None, params=None, metrics=None, error=None, experiments=None,
          timestamp="2026-11-27T01:47:42"):
    """One ExpState as `dvc exp show --json` prints it. metrics: a dict = the file's values, an
    Exception-like {"type", "msg"} under key "error" = an unreadable file, {} = no metrics yet."""
    files = {}
    if metrics is not None and metrics != {}:
        files[METRICS] = metrics if "error" in metrics else {"data": metrics}
    return {"rev": rev, "name": name,
            "data": {"rev": rev, "timestamp": None if rev == "workspace" else timestamp,
                     "params": {"params.yaml": {"data": params if params is not None else copy.deepcopy(PARAMS)}},
                     "metrics": files,
                     "deps": {"stages/report.py": {"hash": "ffe03fe5d1190c6c5a31c3e239d09c28", "size": 664,
                                                   "nfiles": None}},
                     "outs": {"models/lstm": {"hash": "00aab4b33af4b7e282b9b318183de297.dir", "size": 190125,
                                              "nfiles": 5, "use_cache": True, "is_data_source": False}},
                     "meta": {}},
            "error": error, "experiments": experiments}


def exp_range(st, executor_state=None):
    """An ExpRange: the experiment's state and its executor (None: run in the workspace)."""
    executor = None
    if executor_state is not None:
        rev = st["rev"]
        executor = {"state": executor_state, "name": None if executor_state == "failed" else "dvc-task",
                    "local": {"root": None,
                              "log": None if executor_state == "queued" else f"/repo/.dvc/tmp/exps/run/{rev}/{rev}.out",
                              "pid": None if executor_state == "queued" else 28755,
                              "returncode": {"success": 0, "failed": 255}.get(executor_state),
                              "task_id": rev}}
    return {"revs": [st], "executor": executor, "name": st["name"]}


MASTER = "2719c9a3f15239095d70cea744cfe9c4b3398b8a"
OLDER = "0076237b61a1d1c5e8a07e4f3f3b1b2c9d8e7f60"


def exp_show_output():
    """The workspace (same as master), master with five experiments, and an older commit whose
    metrics file is corrupted (as with `dvc exp show -n 2`)."""
    head = metrics_file("lstm", RUN)
    experiments = [
        exp_range(state("4025c73aa1f7d2a4b0b8d1e1f0c2a3b4c5d6e7f8", "head-gru", with_params(model__cell="gru"),
                        metrics_file("gru", RUN)), "success"),
        exp_range(state("5786872bb1f7d2a4b0b8d1e1f0c2a3b4c5d6e7f8", "hidden-64", with_params(model__hidden=64),
                        metrics_file("lstm", {**RUN, "lstm": cell_values(9.05, 8.50, 9.60)})), "success"),
        exp_range(state("057c2bccc1f7d2a4b0b8d1e1f0c2a3b4c5d6e7f8", "ws-run", with_params(model__hidden=96),
                        metrics_file("lstm", {**RUN, "lstm": cell_values(7.30, 6.90, 7.80)})), None),
        exp_range(state("943e42edd1f7d2a4b0b8d1e1f0c2a3b4c5d6e7f8", "waiting", with_params(model__hidden=256),
                        {}), "queued"),
        # a failed run lists the metrics of the commit it started from (stale, not its own)
        exp_range(state("4e7cd955e1f7d2a4b0b8d1e1f0c2a3b4c5d6e7f8", "broken", with_params(model__cell="transformer"),
                        head, error={"msg": "Experiment run failed", "type": ""}), "failed"),
    ]
    corrupted = {"error": {"type": "JSONFileCorruptedError",
                           "msg": "unable to read: 'reports/metrics.json', JSON file structure is corrupted"}}
    return [state("workspace", None, metrics=head),
            state(MASTER, "master", metrics=head, experiments=experiments),
            state(OLDER, None, metrics=corrupted)]


def comparison(data=None, variants=False):
    rows, notes = cmp.parse_exp_show(exp_show_output() if data is None else data, METRICS, variants=variants)
    return cmp.compare(rows, notes, METRICS, variants=variants)


def by_name(rows):
    return {r.name: r for r in rows}


# --- parsing -------------------------------------------------------------------------------

def test_parse_gives_one_row_per_revision_and_experiment_with_kind_baseline_and_status():
    rows, _ = cmp.parse_exp_show(exp_show_output(), METRICS)
    assert [(r.name, r.rev, r.kind, r.baseline, r.status) for r in rows] == [
        ("master", "2719c9a", "commit", "", "commit"),
        ("head-gru", "4025c73", "experiment", "master", "success"),
        ("hidden-64", "5786872", "experiment", "master", "success"),
        ("ws-run", "057c2bc", "experiment", "master", "done"),
        ("waiting", "943e42e", "experiment", "master", "queued"),
        ("broken", "4e7cd95", "experiment", "master", "failed"),
        ("0076237", "0076237", "commit", "", "commit"),
    ]


def test_headline_row_carries_the_metrics_files_top_level_numbers_and_cell():
    rows = by_name(cmp.parse_exp_show(exp_show_output(), METRICS)[0])
    assert rows["head-gru"].cell == "gru"
    assert rows["head-gru"].metrics == {"dataset": "synthfaces", "image_size": 32, "features": "randinit",
                                        "interval": "seeds", **{k: RUN["gru"][k] for k in cmp.METRIC_KEYS if k in RUN["gru"]}}
    assert rows["master"].number("fid") == 9.30 and rows["hidden-64"].number("fid") == 9.05


def test_failed_experiment_shows_its_status_and_log_not_the_stale_metrics_of_its_baseline():
    r = by_name(cmp.parse_exp_show(exp_show_output(), METRICS)[0])["broken"]
    assert r.status == "failed" and r.metrics == {} and r.cell is None
    assert "Experiment run failed" in r.note and "/repo/.dvc/tmp/exps/run/4e7cd955" in r.note
    assert r.params["model.cell"] == "transformer"


def test_queued_experiment_is_listed_with_its_params_and_no_numbers():
    r = by_name(cmp.parse_exp_show(exp_show_output(), METRICS)[0])["waiting"]
    assert r.status == "queued" and r.metrics == {} and r.note == "queued: not run yet"
    assert r.params["model.hidden"] == 256


def test_running_experiment_shows_no_numbers_yet():
    data = exp_show_output()
    data[1]["experiments"][0]["executor"]["state"] = "running"
    r = by_name(cmp.parse_exp_show(data, METRICS)[0])["head-gru"]
    assert r.status == "running" and r.metrics == {} and r.note == "still running"


def test_unreadable_or_missing_metrics_file_is_a_note_on_the_row_not_a_crash():
    rows = by_name(cmp.parse_exp_show(exp_show_output(), METRICS)[0])
    assert rows["0076237"].metrics == {} and "JSON file structure is corrupted" in rows["0076237"].note
    data = exp_show_output()
    data[2]["data"]["metrics"] = {}
    data[2]["data"]["params"] = {"params.yaml": {"error": {"type": "FileNotFoundError", "msg": "no params"}}}
    r = by_name(cmp.parse_exp_show(data, METRICS)[0])["0076237"]
    assert r.note == f"no {METRICS} in this revision" and r.params == {}


def test_revision_dvc_could_not_read_keeps_its_row_with_the_error_and_no_numbers():
    data = exp_show_output()
    data[2]["error"] = {"msg": "unable to read commit", "type": "SCMError"}
    r = by_name(cmp.parse_exp_show(data, METRICS)[0])["0076237"]
    assert r.metrics == {} and r.note == "error: unable to read commit"
    data[2]["data"] = None
    r = by_name(cmp.parse_exp_show(data, METRICS)[0])["0076237"]
    assert r.params == {} and r.note == "error: unable to read commit"


def test_workspace_identical_to_a_commit_is_folded_and_an_edited_one_is_listed():
    rows, notes = cmp.parse_exp_show(exp_show_output(), METRICS)
    assert "workspace" not in by_name(rows)
    assert any("workspace has the same params and metrics as `master`" in n for n in notes)
    data = exp_show_output()
    data[0]["data"]["params"]["params.yaml"]["data"]["model"]["hidden"] = 512     # edited, not run
    rows, notes = cmp.parse_exp_show(data, METRICS)
    assert by_name(rows)["workspace"].status == "workspace"
    assert not any("workspace" in n for n in notes)


def test_only_params_that_differ_between_rows_become_columns():
    c = comparison()
    assert c.params == ["model.cell", "model.hidden"]
    head, body = cmp.table(c)
    assert head[4:6] == ["model.cell", "model.hidden"]
    assert dict(zip(head, body[[r.name for r in c.rows].index("waiting")]))["model.hidden"] == "256"


def test_a_param_file_other_than_params_yaml_is_prefixed_with_its_path():
    data = exp_show_output()
    data[1]["data"]["params"]["sweep.yaml"] = {"data": {"lr": 0.001}}
    rows = by_name(cmp.parse_exp_show(data, METRICS)[0])
    assert rows["master"].params["sweep.yaml:lr"] == 0.001
    assert "sweep.yaml:lr" in cmp.compare(list(rows.values())).params


# --- comparing -----------------------------------------------------------------------------

def test_rows_sorted_by_fid_best_first_and_rows_without_numbers_last_in_dvc_order():
    c = comparison()
    assert [r.name for r in c.rows] == ["head-gru", "ws-run", "hidden-64", "master", "waiting", "broken", "0076237"]
    assert c.best.name == "head-gru"
    assert c.verdicts == ["best", "overlaps best", "worse", "worse", "", "", ""]


def test_overlap_with_the_best_is_stated_as_not_separable_at_the_confidence():
    c = comparison()
    overlap = next(n for n in c.notes if n.startswith("FID intervals overlapping"))
    assert "`ws-run` (lstm)" in overlap and "hidden-64" not in overlap
    assert "not separable from the best at 95% confidence" in overlap
    assert any(n.startswith("Intervals are of each row's central value over its training seeds") and
               "compare the variants of that revision only" in n for n in c.notes)


def test_no_overlap_is_stated_when_every_other_interval_is_apart():
    data = exp_show_output()
    data[1]["experiments"].pop(2)          # ws-run, the only overlapping row
    c = comparison(data)
    assert "worse" in c.verdicts and "overlaps best" not in c.verdicts
    assert any(n.startswith("No other FID interval overlaps the best's (95% intervals)") for n in c.notes)


def test_rows_with_one_seed_are_named_as_provisional_bootstrap_intervals():
    data = exp_show_output()
    hidden = data[1]["experiments"][1]["revs"][0]["data"]["metrics"][METRICS]["data"]
    hidden["interval"] = "bootstrap"       # a one-seed experiment: -S 'train.seeds=[0]'
    hidden["seeds"] = 1
    c = comparison(data)
    note = next(n for n in c.notes if "one training seed" in n)
    assert note.startswith("`hidden-64` (lstm): one training seed") and "omits training variation" in note
    assert "provisional" in note and "The other rows' intervals are over seeds." in note
    head, body = cmp.table(c)
    row = next(b for b in body if b[0] == "hidden-64")
    assert row[head.index("seeds")] == "1"


def test_row_without_an_interval_is_not_called_worse():
    data = exp_show_output()
    hidden = data[1]["experiments"][1]["revs"][0]["data"]["metrics"][METRICS]["data"]
    del hidden["fid_lo"], hidden["fid_hi"]
    c = comparison(data)
    assert c.verdicts[[r.name for r in c.rows].index("hidden-64")] == "no interval"
    assert any("No FID interval for `hidden-64`" in n for n in c.notes)


def test_rows_that_differ_in_features_are_flagged_as_not_comparable():
    data = exp_show_output()
    data[1]["experiments"][1]["revs"][0]["data"]["metrics"][METRICS]["data"]["features"] = "inception"
    assert any("Rows differ in `features` (inception, randinit)" in n for n in comparison(data).notes)


def test_no_fid_in_any_row_is_an_error_that_names_the_file():
    message = r"no FID in other\.json in any of the 7 .*it has: reports/metrics\.json"
    with pytest.raises(cmp.CompareError, match=message):
        rows, notes = cmp.parse_exp_show(exp_show_output(), "other.json")
        cmp.compare(rows, notes, "other.json")


@pytest.mark.parametrize("bad", [{}, [{"name": "x"}], "text", [1, 2]])
def test_input_that_is_not_exp_show_output_is_an_error(bad):
    with pytest.raises(cmp.CompareError, match="not the output of `dvc exp show --json`"):
        cmp.parse_exp_show(bad, METRICS)


def test_variants_gives_a_row_per_cell_and_marks_each_runs_headline():
    data = exp_show_output()
    data[1]["experiments"] = data[1]["experiments"][1:2]       # master and hidden-64: two runs
    c = comparison(data, variants=True)
    keyed = {(r.name, r.cell): r for r in c.rows}
    assert set(keyed) >= {(n, cell) for n in ("master", "hidden-64") for cell in ("rnn", "lstm", "gru")}
    assert keyed["master", "lstm"].headline and not keyed["master", "gru"].headline
    assert keyed["hidden-64", "lstm"].number("fid") == 9.05 and keyed["hidden-64", "rnn"].number("fid") == 11.15
    assert c.best.cell == "gru"
    head, body = cmp.table(c)
    assert "lstm (headline)" in [dict(zip(head, b))["variant"] for b in body]


def test_variants_lists_experiments_that_only_change_model_cell_once():
    data = exp_show_output()
    data[1]["experiments"] = data[1]["experiments"][:1]        # head-gru: master's run, other headline
    c = comparison(data, variants=True)
    assert {r.name for r in c.rows} == {"master", "0076237"}
    assert any("`head-gru`: the same run as `master`" in n for n in c.notes)


# --- rendering -----------------------------------------------------------------------------

def test_markdown_table_marks_the_best_and_keeps_every_line_the_same_width():
    text = cmp.render(comparison(), "md")
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| experiment | rev | baseline | status | model.cell | model.hidden | variant |")
    assert len({ln.count(" | ") for ln in lines}) == 1
    assert lines[2].startswith("| **head-gru** | 4025c73 | master | success | gru | 128 | gru | 612k / 233k |")
    assert "| 7.15 [6.84, 7.40] | 15.0 [10.0, 20.0] |" in lines[2] and lines[2].endswith("| **best** |")
    broken = next(ln for ln in lines if ln.startswith("| broken "))
    assert "| failed | transformer | 128 | n/a |" in broken
    assert "- `broken` [failed]: failed: Experiment run failed" in text


def test_missing_metric_keys_render_as_na():
    data = exp_show_output()
    data[1]["data"]["metrics"][METRICS]["data"] = {"cell": "lstm", "fid": 9.3}
    c = comparison(data)
    head, body = cmp.table(c)
    master = dict(zip(head, body[[r.name for r in c.rows].index("master")]))
    assert master["FID"] == "9.30" and master["KID ×10⁻³"] == "n/a" and master["G / D params"] == "n/a"
    assert cmp.records(c)[[r.name for r in c.rows].index("master")]["w1_grey"] is None


def test_csv_has_one_record_per_row_with_every_metric_key_and_the_verdict():
    c = comparison()
    recs = list(csv.DictReader(io.StringIO(cmp.render(c, "csv"))))
    assert [r["experiment"] for r in recs] == [r.name for r in c.rows]
    first = recs[0]
    assert set(cmp.METRIC_KEYS) <= set(first) and first["vs_best"] == "best"
    assert float(first["fid"]) == 7.15 and first["model.cell"] == "gru" and first["fid_tier"] == "1"
    assert recs[-1]["fid"] == "" and "corrupted" in recs[-1]["note"]


def test_json_names_the_best_the_differing_params_and_every_row():
    out = json.loads(cmp.render(comparison(), "json"))
    assert out["best"] == {"experiment": "head-gru", "rev": "4025c73", "cell": "gru"}
    assert out["params"] == ["model.cell", "model.hidden"] and len(out["rows"]) == 7
    waiting = next(r for r in out["rows"] if r["experiment"] == "waiting")
    assert waiting["status"] == "queued" and waiting["fid"] is None and waiting["model.hidden"] == 256


def test_html_is_a_standalone_page_with_escaped_cells():
    data = exp_show_output()
    data[1]["experiments"][0]["revs"][0]["name"] = "<b>gru</b>"
    text = cmp.render(comparison(data), "html")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert '<td><strong>&lt;b&gt;gru&lt;/b&gt;</strong></td>' in text and "<b>gru</b>" not in text


# --- the command ---------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(exp_show_output()))
    return path


def test_cli_reads_a_saved_exp_show_and_prints_markdown(saved):
    r = runner.invoke(app, ["compare", "--json", str(saved)])
    assert r.exit_code == 0, r.output
    assert "| **head-gru** | 4025c73 |" in r.output and "sorted by FID" in r.output


def test_cli_writes_out_atomically_in_the_chosen_format(saved, tmp_path):
    out = tmp_path / "sub" / "compare.csv"
    r = runner.invoke(app, ["compare", "--json", str(saved), "--variants", "--format", "csv", "--out", str(out)])
    assert r.exit_code == 0, r.output
    recs = list(csv.DictReader(out.open()))
    assert {(x["experiment"], x["cell"]) for x in recs} >= {("hidden-64", "rnn"), ("master", "gru")}
    assert sorted(p.name for p in out.parent.iterdir()) == ["compare.csv"]     # no temporary left


@pytest.mark.parametrize("args, message", [
    (["--format", "xml"], "--format 'xml' must be one of: md, html, csv, json"),
    (["-A"], "--all-commits/--rev/-n select what `dvc exp show` reads"),
    (["--rev", "main"], "--all-commits/--rev/-n select what `dvc exp show` reads"),
    (["--metrics-file", "other.json"], "no FID in other.json"),
])
def test_cli_refuses_bad_options_with_exit_2(saved, args, message):
    r = runner.invoke(app, ["compare", "--json", str(saved), *args])
    assert r.exit_code == 2 and f"rnngan compare: error: {message}" in r.output


def test_cli_refuses_a_missing_or_malformed_json_file(tmp_path):
    r = runner.invoke(app, ["compare", "--json", str(tmp_path / "none.json")])
    assert r.exit_code == 2 and "no such file" in r.output
    (tmp_path / "bad.json").write_text("[{")
    r = runner.invoke(app, ["compare", "--json", str(tmp_path / "bad.json")])
    assert r.exit_code == 2 and "bad.json: not JSON" in r.output
    r = runner.invoke(app, ["compare", "--json", "-"], input='{"rev": 1}')
    assert r.exit_code == 2 and "not the output of `dvc exp show --json`" in r.output


def test_cli_outside_a_dvc_repository_reports_dvcs_error_with_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["compare"])
    assert r.exit_code == 2
    assert "rnngan compare: error: `dvc exp show --json` failed" in r.output and "not inside of a DVC repository" in r.output


def test_exp_show_passes_the_selection_options_through_to_dvc(monkeypatch):
    seen = []

    def fake_run(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps(exp_show_output()), stderr="")

    monkeypatch.setattr(cmp.subprocess, "run", fake_run)
    assert cmp.exp_show() == exp_show_output()
    cmp.exp_show(all_commits=True, revs=["main", "v1"], num=3)
    assert seen[0][1:] == ["-m", "dvc", "exp", "show", "--json"]
    assert seen[1][6:] == ["--all-commits", "--rev", "main", "--rev", "v1", "-n", "3"]


# --- end to end ----------------------------------------------------------------------------

@pytest.mark.e2e
def test_compare_cli_lists_a_queued_sweep_with_each_experiments_own_metrics(finished_project, tmp_path):
    from project import clone_repo

    r = clone_repo(finished_project, tmp_path / "clone")
    r.dvc("exp", "run", "--queue", "-S", "model.cell=gru", "-n", "head-gru")
    r.dvc("exp", "run", "--queue", "-S", "model.cell=sru", "-n", "head-sru")
    r.dvc("exp", "run", "--run-all")
    r.dvc("exp", "run", "--queue", "-S", "model.cell=rnn", "-n", "waiting")      # never run
    shown = json.loads(r.dvc("exp", "show", "--json").stdout)
    revs = {e["name"]: e["revs"][0]["rev"][:7] for e in shown[1]["experiments"]}

    out = json.loads(r.run(sys.executable, "-m", "rnngan.cli", "compare", "--format", "json").stdout)
    rows = {x["experiment"]: x for x in out["rows"]}
    assert set(rows) == {"master", "head-gru", "head-sru", "waiting"}     # the workspace equals master
    assert {n: (rows[n]["status"], rows[n]["rev"]) for n in revs} == {
        "head-gru": ("success", revs["head-gru"]), "head-sru": ("success", revs["head-sru"]),
        "waiting": ("queued", revs["waiting"])}
    assert out["params"] == ["model.cell"]
    # Changing model.cell only picks the headline of the same trained run: each experiment's
    # numbers must be that variant's in the finished run's own metrics file.
    finished = json.loads((finished_project.root / "reports" / "metrics.json").read_text())
    for name, cell in (("master", "lstm"), ("head-gru", "gru"), ("head-sru", "sru")):
        assert rows[name]["cell"] == cell and rows[name]["model.cell"] == cell
        expected = {k: finished["cells"][cell].get(k) for k in cmp.METRIC_KEYS}
        assert {k: rows[name][k] for k in cmp.METRIC_KEYS} == expected
    assert rows["waiting"]["fid"] is None and rows["waiting"]["model.cell"] == "rnn"
    fids = [x["fid"] for x in out["rows"] if x["fid"] is not None]
    assert fids == sorted(fids) and out["rows"][0]["vs_best"] == "best"

    md = r.run(sys.executable, "-m", "rnngan.cli", "compare").stdout
    best = out["rows"][0]
    assert f"| **{best['experiment']}** | {best['rev']} |" in md and "| waiting | " in md


def test_attribute_coverage_is_a_column_and_n_a_where_a_run_has_none():
    c = comparison()
    head, body = cmp.table(c)
    assert head[-3:] == ["attribute TV", "joint modes", "vs best"]
    assert all(row[-3:-1] == ["n/a", "n/a"] for row in body)       # these metrics files predate attributes
    data = exp_show_output()
    data[1]["data"]["metrics"][METRICS]["data"].update({"attr_tv": 0.119, "attr_modes": 0.40625, "attr_kl": 1.8})
    rows = by_name(cmp.parse_exp_show(data, METRICS)[0])
    head, body = cmp.table(cmp.compare([rows["master"]]))
    assert dict(zip(head, body[0]))["attribute TV"] == "0.119" and dict(zip(head, body[0]))["joint modes"] == "0.406"


def test_pair_variants_are_shown_with_their_generator_and_discriminator():
    cells = {**RUN, "lstm+dcgan": cell_values(20.1, 19.0, 21.3), "dcgan+lstm": cell_values(6.2, 5.9, 6.6)}
    data = [state(MASTER, "master", with_params(model__variants=list(cells)), metrics_file("lstm", cells))]
    c = comparison(data, variants=True)
    head, body = cmp.table(c)
    shown = [dict(zip(head, b))["variant"] for b in body]
    assert "lstm+dcgan (G lstm, D dcgan)" in shown and "dcgan+lstm (G dcgan, D lstm)" in shown
    assert "lstm (headline)" in shown and "gru" in shown
    recs = {r["cell"]: r for r in cmp.records(c)}
    assert (recs["lstm+dcgan"]["generator"], recs["lstm+dcgan"]["discriminator"]) == ("lstm", "dcgan")
    assert (recs["gru"]["generator"], recs["gru"]["discriminator"]) == ("gru", "gru")
    assert "`master` (dcgan+lstm (G dcgan, D lstm))" in c.notes[0]      # the best row, named


def test_variants_is_a_flag_pair_and_the_help_shows_no_bool_placeholders(saved):
    on = runner.invoke(app, ["compare", "--json", str(saved), "--variants", "--format", "json"])
    off = runner.invoke(app, ["compare", "--json", str(saved), "--no-variants", "--format", "json"])
    assert on.exit_code == off.exit_code == 0, on.output + off.output
    assert json.loads(on.output)["variants"] is True and json.loads(off.output)["variants"] is False
    help_text = runner.invoke(app, ["compare", "--help"]).output
    assert "--variants / --no-variants" in help_text and "<bool>" not in help_text
    r = runner.invoke(app, ["compare", "--json", str(saved), "--variants", "true"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "rnngan compare: error: Got unexpected extra argument" in r.output and "`rnngan compare --help`" in r.output


def test_the_report_and_compare_print_one_variant_alike():
    """One definition of the all-variants table (rnngan.report.table): compare's columns after
    `variant` are the report's, and the same metrics.json values print the same cells."""
    from rnngan.report import table as variant_table

    data = exp_show_output()
    data[1]["data"]["metrics"][METRICS]["data"].update({"attr_tv": 0.119, "attr_modes": 0.40625})
    rows = by_name(cmp.parse_exp_show(data, METRICS)[0])
    head, body = cmp.table(cmp.compare([rows["master"]]))
    report_cols = variant_table.columns("attributes")
    first = head.index("variant") + 1
    assert head[first:-1] == [c.head for c in report_cols]
    assert body[0][first:-1] == variant_table.cells(rows["master"].metrics, report_cols, "n/a")
    assert dict(zip(head, body[0]))["G / D params"] == "612k / 233k"
    assert "FID bootstrap width" in [c.head for c in variant_table.columns("bootstrap")]
    assert "FID bootstrap width" not in head          # the report's alone: runs' bootstrap intervals
