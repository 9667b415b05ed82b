"""The GitHub Actions workflows in .github/workflows/: every file linted by actionlint with
shellcheck checking the `run:` scripts, and the PR report workflow's structure and shell steps
(run here with bash, against a small DVC repository or stub commands)."""
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnngan.config import parse_params

from conftest import PROJECT

WORKFLOWS = PROJECT / ".github" / "workflows"
PR_REPORT = WORKFLOWS / "pr-report.yml"
VENV_BIN = Path(sys.executable).parent


def workflow_files() -> list[Path]:
    return sorted(p for p in WORKFLOWS.iterdir() if p.suffix in (".yml", ".yaml"))


def find_tool(name: str) -> str:
    """A declared test dependency (pyproject's `test` extra ships it): the venv's, else PATH's."""
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if not found:
        pytest.fail(f"{name} not found in {VENV_BIN} or on PATH: it is a declared test "
                    "dependency; install the test extra: pip install -e '.[test]'")
    return found


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    """actionlint with shellcheck named explicitly, so a missing shellcheck cannot silently turn
    the script checks off (actionlint skips them when it finds no shellcheck)."""
    cmd = [find_tool("actionlint"), "-oneline", "-no-color",
           "-shellcheck", find_tool("shellcheck"), "-pyflakes=", *map(str, files)]
    return subprocess.run(cmd, cwd=PROJECT, capture_output=True, text=True, timeout=60,
                          check=False)


def load(path: Path = PR_REPORT) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(wf: dict) -> dict:
    on = wf["on"] if "on" in wf else wf[True]  # YAML 1.1 reads a bare `on` key as True
    return {on: None} if isinstance(on, str) else dict.fromkeys(on) if isinstance(on, list) else on


def steps(wf: dict) -> list[dict]:
    return [s for job in wf["jobs"].values() for s in job["steps"]]


def step(wf: dict, name: str) -> dict:
    (found,) = [s for s in steps(wf) if s.get("name") == name]
    return found


# ---------------------------------------------------------------------------------------------
# actionlint


def test_workflows_folder_holds_the_pr_report_workflow():
    assert PR_REPORT in workflow_files()


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_workflow_passes_actionlint_with_shellcheck(path):
    result = actionlint(path)
    assert result.returncode == 0, f"actionlint found problems:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("old, new, expected", [
    # an unknown event
    ("  pull_request:\n", "  pull_requests:\n", "pull_requests"),
    # an expression on a property the github context does not have
    ("${{ github.run_id }}", "${{ github.nope }}", "nope"),
    # an output upload-artifact does not have
    ("steps.artifact.outputs.artifact-url", "steps.artifact.outputs.url", '"url"'),
    # a shell mistake only shellcheck sees (an unquoted expansion): proves it checks run: scripts
    ("run: dvc push", "run: dvc push $DVC_PUSH_TARGETS", "SC2086"),
], ids=["unknown-event", "bad-expression", "bad-action-output", "shellcheck-finding"])
def test_actionlint_rejects_a_broken_copy_of_the_pr_workflow(tmp_path, old, new, expected):
    text = PR_REPORT.read_text()
    assert old in text, f"the broken copy needs {old!r} in the workflow"
    broken = tmp_path / ".github" / "workflows" / "pr-report.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text.replace(old, new, 1))
    result = actionlint(broken)
    assert result.returncode != 0 and expected in result.stdout, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# what the PR report relies on


def test_pr_workflow_runs_on_pull_requests_and_by_hand():
    on = triggers(load())
    assert "pull_request" in on and "workflow_dispatch" in on


def test_pr_workflow_checks_out_full_history_for_the_base_branch_diffs():
    (checkout,) = [s for s in steps(load()) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["fetch-depth"] == 0


def test_pr_workflow_token_can_only_read_code_and_write_pr_comments():
    assert load()["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_pr_workflow_cancels_older_runs_of_the_same_pr():
    concurrency = load()["concurrency"]
    assert concurrency["cancel-in-progress"] is True
    assert "github.event.pull_request.number" in concurrency["group"]


def test_pr_workflow_job_has_a_timeout_and_no_analytics():
    (job,) = load()["jobs"].values()
    assert 20 <= job["timeout-minutes"] <= 120
    assert job["env"]["DVC_NO_ANALYTICS"] == "1" and job["env"]["ITERATIVE_DO_NOT_TRACK"] == "1"


def test_pr_workflow_installs_cpu_torch_before_the_package():
    script = step(load(), "Install rnngan (CPU-only PyTorch)")["run"]
    cpu = script.index("--index-url https://download.pytorch.org/whl/cpu")
    assert cpu < script.index("pip install --editable .")


def test_pr_workflow_torch_requirements_are_pyprojects_ranges():
    """The install step reads torch's and torchvision's ranges from pyproject.toml."""
    script = step(load(), "Install rnngan (CPU-only PyTorch)")["run"]
    program = re.search(r"<<'EOF'\n(.*?)\nEOF\n", script, re.DOTALL).group(1)
    out = subprocess.run([sys.executable, "-"], input=program, cwd=PROJECT, capture_output=True,
                         text=True, check=True).stdout.split()
    import tomllib

    deps = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out == [d for d in deps if re.match(r"torch(vision)?[<>=!~ ]", d)]
    assert [re.match(r"[a-z]+", d).group(0) for d in out] == ["torch", "torchvision"]


def test_pr_workflow_diffs_metrics_and_params_against_the_base_branch():
    wf = load()
    (job,) = wf["jobs"].values()
    assert "github.base_ref" in job["env"]["BASE_REF"]
    script = step(wf, "Build the comment")["run"]
    assert 'dvc metrics diff "$BASE_REF" --md' in script
    assert 'dvc params diff "$BASE_REF" --md' in script


def test_pr_workflow_posts_one_updatable_cml_comment_without_uploading_images_by_default():
    wf = load()
    (setup_cml,) = [s for s in steps(wf) if s.get("uses", "").startswith("iterative/setup-cml@")]
    post = step(wf, "Post or update the PR comment")
    assert setup_cml["if"] == post["if"]  # installed exactly where it is used
    script = post["run"]
    # `cml comment update` is `cml comment create` editing the comment with the same watermark
    assert re.search(r"cml comment update .*--watermark-title=", script, re.DOTALL)
    assert "--target=\"pr/$PR_NUMBER\"" in script
    # images stay on GitHub unless an image server is configured
    no_server = script.index('if [ -n "$CML_PUBLISH_URL" ]')
    assert "publish=(--publish=false)" in script[no_server:]
    assert "vars.CML_PUBLISH_URL" in post["env"]["CML_PUBLISH_URL"]


def test_pr_workflow_uploads_reports_as_an_artifact():
    (upload,) = [s for s in steps(load())
                 if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["path"].rstrip("/") == "reports"
    assert upload["with"]["if-no-files-found"] == "error"


def test_every_override_the_workflow_suggests_is_a_valid_param():
    """The `key=value` examples in the workflow (as `dvc exp run -S` takes them) name real
    params.yaml keys with values the params validation accepts, all together too."""
    text = PR_REPORT.read_text()
    sections = yaml.safe_load((PROJECT / "params.yaml").read_text()).keys()
    # key=value as in prose: the value stops before a closing bracket, quote or final full stop
    pattern = r"\b([a-z_]+(?:\.[a-z_]+)+)=([^\s)\"'`,;]*[^\s)\"'`,;.])"
    overrides = [(k, v) for k, v in re.findall(pattern, text) if k.split(".")[0] in sections]
    assert overrides, "the workflow suggests no override"
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for key, value in overrides:
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        assert leaf in node, f"{key} is not in params.yaml"
        node[leaf] = yaml.safe_load(value)
    parse_params(raw)


# ---------------------------------------------------------------------------------------------
# the shell steps, run with bash as GitHub runs them (bash --noprofile --norc -eo pipefail)


def run_step(name: str, cwd: Path, env: dict, path_first: Path | None = None):
    script = cwd.parent / "step.sh"
    script.write_text(step(load(), name)["run"])
    path = os.pathsep.join([str(p) for p in (path_first, VENV_BIN) if p] + [os.environ["PATH"]])
    full = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", "RUNNER_TEMP": str(cwd.parent),
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", **env}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                          check=False, cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=60)


def stub(bin_dir: Path, name: str, log: Path):
    """A command that only records its arguments, one call per line."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "{log}"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_remote_step_does_nothing_without_a_remote(tmp_path):
    work, log, out = tmp_path / "work", tmp_path / "calls", tmp_path / "output"
    work.mkdir()
    stub(tmp_path / "bin", "dvc", log)
    result = run_step("Configure the DVC remote (when DVC_REMOTE_URL is set)", work,
                      {"DVC_REMOTE_URL": "", "DVC_REMOTE_CONFIG": "", "GITHUB_OUTPUT": str(out)},
                      tmp_path / "bin")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "configured=false\n" and not log.exists()


def test_remote_step_adds_a_local_remote_with_each_credential_line(tmp_path):
    work, log, out = tmp_path / "work", tmp_path / "calls", tmp_path / "output"
    work.mkdir()
    for name in ("dvc", "python"):
        stub(tmp_path / "bin", name, log)
    config = ("access_key_id=AKIA1\r\n# a comment\n\nsecret_access_key=s3cr=t==\n"
              "endpointurl=https://minio.example:9000\n")
    result = run_step("Configure the DVC remote (when DVC_REMOTE_URL is set)", work,
                      {"DVC_REMOTE_URL": "s3://bucket/rnngan", "DVC_REMOTE_CONFIG": config,
                       "GITHUB_OUTPUT": str(out)}, tmp_path / "bin")
    assert result.returncode == 0, result.stderr
    assert out.read_text() == "configured=true\n"
    assert log.read_text().splitlines() == [
        "python -m pip install dvc[s3]",
        "dvc remote add --local --default ci s3://bucket/rnngan",
        "dvc remote modify --local ci access_key_id AKIA1",
        "dvc remote modify --local ci secret_access_key s3cr=t==",  # only the first = splits
        "dvc remote modify --local ci endpointurl https://minio.example:9000",
    ]


@pytest.mark.parametrize("overrides, expected", [
    ("", ["dvc repro"]),
    ("train.steps=200  model.variants=[gru]",
     ["dvc exp run -S train.steps=200 -S model.variants=[gru]"]),
])
def test_repro_step_runs_the_pipeline_or_an_experiment_with_the_overrides(tmp_path, overrides,
                                                                            expected):
    work, log = tmp_path / "work", tmp_path / "calls"
    work.mkdir()
    stub(tmp_path / "bin", "dvc", log)
    result = run_step("Reproduce the pipeline", work, {"RNNGAN_SET": overrides}, tmp_path / "bin")
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == expected


def test_repro_step_refuses_an_override_that_is_not_key_value(tmp_path):
    work, log = tmp_path / "work", tmp_path / "calls"
    work.mkdir()
    stub(tmp_path / "bin", "dvc", log)
    result = run_step("Reproduce the pipeline", work, {"RNNGAN_SET": "train.steps=200 -f"},
                      tmp_path / "bin")
    assert result.returncode == 1 and "'-f' is not key=value" in result.stdout
    assert not log.exists()


REPORT_MD = """# Report fixture

| real | gru |
| --- | --- |
| ![real](figures/samples_real.png) | ![gru](figures/samples_gru.png) |

## Losses

![losses](figures/losses.png)
"""


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory):
    """A DVC repository whose `base` commit has other metrics and params than its HEAD."""
    root = tmp_path_factory.mktemp("comment") / "repo"
    root.mkdir()
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}

    def sh(*cmd):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)

    def write(fid, gru_fid, steps):
        (root / "params.yaml").write_text(f"train:\n  steps: {steps}\n")
        (root / "reports" / "metrics.json").write_text(
            f'{{"fid": {fid}, "cells": {{"gru": {{"fid": {gru_fid}}}}}, "real": {{"fid": {gru_fid / 50}}}}}\n')

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    (root / "reports").mkdir()
    (root / "reports" / "report.md").write_text(REPORT_MD)
    (root / "dvc.yaml").write_text(
        "stages:\n  report:\n    cmd: 'true'\n    params:\n      - train.steps\n"
        "    metrics:\n      - reports/metrics.json:\n          cache: false\n")
    write(9.5, 7.5, 650)
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "base")
    sh("git", "tag", "base")
    write(8.25, 6.5, 200)
    sh("git", "commit", "-qam", "head")
    return root


def build_comment(repo: Path, base: str, publish_url: str = "", overrides: str = "") -> str:
    summary = repo.parent / "summary.md"
    summary.write_text("")
    result = run_step("Build the comment", repo, {
        "BASE_REF": base, "HEAD_SHA": "0123456789abcdef", "RNNGAN_SET": overrides,
        "RUN_URL": "https://github.example/o/r/actions/runs/1",
        "ARTIFACT_URL": "https://github.example/o/r/actions/runs/1/artifacts/2",
        "CML_PUBLISH_URL": publish_url, "GITHUB_WORKSPACE": str(repo),
        "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.returncode == 0, result.stderr
    comment = (repo.parent / "comment.md").read_text()
    assert summary.read_text() == comment  # the run's summary shows the same report
    return comment


@pytest.fixture(scope="module")
def comment(dvc_repo):
    """The comment against `base`, with no image server and no overrides (built once)."""
    return build_comment(dvc_repo, "base")


def test_comment_puts_headline_metrics_first_and_every_variant_and_the_real_row_in_a_fold(comment):
    headline, fold = comment.split("<details>")
    assert re.search(r"\| reports/metrics.json \| fid +\| 9.5 +\| 8.25 +\| -1.25 ", headline)
    assert "cells.gru.fid" not in headline and "| cells.gru.fid " in fold.split("</details>")[0]
    assert "real.fid" not in headline and "| real.fid " in fold.split("</details>")[0]
    assert re.search(r"\| params.yaml \| train.steps \| 650 +\| 200 ", comment)
    assert "Profile overrides" not in comment


def test_comment_links_figures_to_the_artifact_instead_of_uploading_them(comment):
    artifact = "https://github.example/o/r/actions/runs/1/artifacts/2"
    assert f"| [figure: real]({artifact}) | [figure: gru]({artifact}) |" in comment
    assert f"[figure: losses]({artifact})" in comment
    assert "figures/" not in comment and "![" not in comment
    assert "\n## Report fixture\n" in comment and "\n### Losses\n" in comment  # a level down


def test_comment_keeps_figures_as_local_images_for_cml_to_publish_when_a_server_is_set(dvc_repo):
    comment = build_comment(dvc_repo, "base", publish_url="https://images.example")
    figures = dvc_repo / "reports" / "figures"
    assert f"![real]({figures}/samples_real.png)" in comment
    assert f"![losses]({figures}/losses.png)" in comment


def test_comment_says_when_nothing_changed_and_warns_about_overrides(dvc_repo):
    comment = build_comment(dvc_repo, "HEAD", overrides="train.steps=200")
    assert "No metric changed." in comment and "No param changed." in comment
    assert "<details>" not in comment
    assert "Profile overrides: `train.steps=200`" in comment
