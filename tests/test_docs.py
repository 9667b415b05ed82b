"""The README and docs/ against the code and the committed report.

- The README's result table (between `<!-- results: ... -->` and `<!-- /results -->`) must hold
  exactly what `reports/metrics.json` holds, rounded as the table rounds it, and the plain-words
  claims beside it must still be true of those numbers.
- Every `rnngan ...` and `dvc ...` command in a code block of README.md or docs/*.md must parse:
  the `rnngan` subcommand and options through the typer app, the `dvc` command through DVC's own
  parser, every `-S key=value` through rnngan.config, every stage target against the stage list.
  The cheap ones (help, check, info, stage list, dry runs, metrics and exp show) run as written
  in a temporary copy of the project.
- Every relative link between the pages resolves, anchors included; CITATION.cff names the
  package's version and license.

Each checker is also shown failing on a deliberately broken input, so none of them can pass
vacuously.
"""
import contextlib
import io
import itertools
import json
import logging
import re
import shlex
from pathlib import Path

import pytest
import typer
import yaml

from conftest import PROJECT

README = PROJECT / "README.md"
METRICS = PROJECT / "reports" / "metrics.json"
# The pages whose commands and links are checked: the README and every page under docs/.
PAGES = [README, *sorted((PROJECT / "docs").glob("*.md"))]
# Written by `rnngan screen` (its --runs and --recipe defaults): a link to them may precede them.
WRITTEN_BY_SCREEN = {PROJECT / "docs" / "recipe.md", PROJECT / "docs" / "recipe" / "runs.csv"}
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}


# --- the result table ------------------------------------------------------------------------

RESULTS = re.compile(r"<!-- results: reports/metrics\.json[^>]*-->\n(.*?)\n<!-- /results -->", re.S)
REAL_ROW = "held-out real"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def results_table(text: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the README's result table."""
    match = RESULTS.search(text)
    assert match, "README.md has no table between '<!-- results: reports/metrics.json -->' and '<!-- /results -->'"
    lines = [line for line in match.group(1).splitlines() if line.strip().startswith("|")]
    return _cells(lines[0]), [_cells(line) for line in lines[2:]]


def _column(header: str) -> str:
    """The metrics.json key a column shows, from its header ('FID ↓ [95% over seeds]' -> 'fid')."""
    h = header.lower()
    if "tier" in h:
        return "fid_tier" if h.startswith("fid") else "kid_tier"
    return h.split()[0]


def expected_cell(key: str, entry: dict) -> str:
    """A metrics.json value as the table writes it (blank where the row has none: the real row)."""
    if key == "fid":
        return f"{entry['fid']:.2f} [{entry['fid_lo']:.2f}, {entry['fid_hi']:.2f}]"
    value = entry.get(key)
    if value is None:
        return ""
    if key == "kid":
        # as the report shows it: the squared MMD is never negative, so a negative unbiased
        # estimate reads 0 (and never `-0.0`)
        return f"{1000 * max(0.0, value):.1f}"
    if key in ("seeds", "fid_tier", "kid_tier"):
        return str(int(value))
    return f"{value:.3f}"


def table_mismatches(text: str, metrics: dict) -> list[str]:
    header, rows = results_table(text)
    keys = [_column(h) for h in header]
    assert keys[0] == "variant", f"the table's first column must be the variant, got {header[0]!r}"
    problems = []
    named = [row[0] for row in rows]
    if sorted(named) != sorted([*metrics["cells"], REAL_ROW]):
        problems.append(f"rows {named} are not the variants of metrics.json {list(metrics['cells'])} + {REAL_ROW!r}")
    for row in rows:
        entry = metrics["real"] if row[0] == REAL_ROW else metrics["cells"].get(row[0])
        if entry is None:
            continue
        for key, cell in zip(keys[1:], row[1:]):
            want = expected_cell(key, entry)
            if cell != want:
                problems.append(f"{row[0]} {key}: README says {cell!r}, reports/metrics.json gives {want!r}")
    return problems


def test_readme_results_table_matches_reports_metrics_json():
    problems = table_mismatches(README.read_text(), json.loads(METRICS.read_text()))
    assert not problems, "\n".join(problems)


def test_results_check_catches_a_changed_number():
    text, metrics = README.read_text(), json.loads(METRICS.read_text())
    lstm = metrics["cells"]["lstm"]
    cell = expected_cell("precision", lstm)
    broken = text.replace(f"| {cell} |", f"| {float(cell) + 0.001:.3f} |", 1)
    assert broken != text
    assert any("precision" in p for p in table_mismatches(broken, metrics))
    dropped = re.sub(r"\n\| sru \|[^\n]*", "", text, count=1)
    assert any("not the variants" in p for p in table_mismatches(dropped, metrics))


RECURRENT = ("rnn", "lstm", "gru", "sru")


def _claims(m: dict) -> dict[str, bool]:
    """Each plain-words claim of the README (a phrase it contains) and whether metrics.json bears it out."""
    cells = m["cells"]
    recurrent = [cells[c] for c in RECURRENT if c in cells]
    dcgan = cells.get("dcgan", {})
    return {
        "FID and KID separate no variant": all(c["fid_tier"] == 1 and c["kid_tier"] == 1 for c in cells.values()),
        "at three seeds": all(c["seeds"] == 3 for c in cells.values()),
        "recurrent generators have recall near zero": bool(recurrent) and all(c["recall"] < 0.05 for c in recurrent),
        "DCGAN covers more of the real data": bool(dcgan) and all(
            dcgan["coverage"] > c["coverage"] and dcgan["recall"] > c["recall"] for c in recurrent),
        "`lstm` has the highest coverage": "lstm" in cells and all(
            cells["lstm"]["coverage"] >= c["coverage"] for c in cells.values()),
        "DCGAN produces the most joint attribute modes": bool(dcgan) and all(
            dcgan["attr_modes"] >= c["attr_modes"] for c in cells.values()),
        "`lstm` has the lowest mean FID": "lstm" in cells and all(cells["lstm"]["fid"] <= c["fid"] for c in cells.values()),
    }


def test_readme_claims_hold_for_reports_metrics_json():
    text = " ".join(README.read_text().split())
    made = {phrase: holds for phrase, holds in _claims(json.loads(METRICS.read_text())).items() if phrase in text}
    assert made, "the README states none of the claims this test knows: update _claims with the new wording"
    wrong = [phrase for phrase, holds in made.items() if not holds]
    assert not wrong, f"README claims that reports/metrics.json no longer supports: {wrong}"


def test_claims_check_catches_a_claim_the_numbers_do_not_support():
    m = json.loads(METRICS.read_text())
    m["cells"]["lstm"]["fid_tier"] = 2
    m["cells"]["gru"]["recall"] = 0.5
    m["cells"]["sru"]["coverage"] = 0.9
    m["cells"]["sru"]["attr_modes"] = 0.99
    claims = _claims(m)
    assert not claims["FID and KID separate no variant"] and not claims["recurrent generators have recall near zero"]
    assert not claims["`lstm` has the highest coverage"] and not claims["DCGAN produces the most joint attribute modes"]


# --- the commands ------------------------------------------------------------------------------

def code_blocks(text: str):
    """(language, first line number, lines) of every fenced code block."""
    lang, start, body = None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"\s*```(\S*)", line)
        if fence and lang is None:
            lang, start, body = fence.group(1).lower(), number + 1, []
        elif fence:
            yield lang, start, body
            lang = None
        elif lang is not None:
            body.append(line)


def shell_commands(text: str):
    """(line number, argv) of every `rnngan` and `dvc` command in the shell code blocks: lines
    joined at trailing backslashes, comments dropped, split at &&, ||, | and ;."""
    for lang, start, body in code_blocks(text):
        if lang not in SHELL_BLOCKS and lang != "":
            continue
        joined, first = "", None
        for offset, line in enumerate(body):
            if lang in ("console", "") and not joined:
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            first = start + offset if not joined else first
            if line.rstrip().endswith("\\"):
                joined += line.rstrip()[:-1] + " "
                continue
            tokens, joined = shlex.split(joined + line, comments=True), ""
            command = []
            for token in [*tokens, ";"]:
                if token in ("&&", "||", "|", ";"):
                    if command and command[0] in ("rnngan", "dvc"):
                        yield first, command
                    command = []
                else:
                    command.append(token)


def all_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for number, argv in shell_commands(page.read_text()):
            found.append((f"{page.relative_to(PROJECT)}:{number}", argv))
    return found


def _click_app():
    from rnngan.cli import app

    return typer.main.get_command(app)


def rnngan_problems(args: list[str]) -> list[str]:
    """What is wrong with `rnngan ARGS`: an unknown command, option or value, a missing argument."""
    group = _click_app()
    if not args or args[0] in ("--help", "-h"):
        return []
    name, rest = args[0], args[1:]
    command = group.commands.get(name)
    if command is None:
        return [f"no rnngan command {name!r}; there are: {', '.join(group.commands)}"]
    if "--help" in rest:
        rest = [a for a in rest if a != "--help"]
        if not rest:
            return []
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            command.make_context(f"rnngan {name}", list(rest))
    except Exception as exc:
        # note: a usage error of click, or of the click that typer vendors: both
        # have format_message, neither is importable under one public name
        if not hasattr(exc, "format_message"):
            raise
        return [f"rnngan {name}: {exc.format_message()}"]
    return []


def _overrides(sets: list[str]) -> list[dict]:
    """Every combination a list of `-S key=value` stands for (DVC sweeps: `key=a,b`), as dicts."""
    choices = []
    for s in sets:
        key, sep, value = s.partition("=")
        if not sep:
            raise ValueError(f"-S {s!r} is not key=value")
        values = [value] if value.lstrip().startswith("[") else value.split(",")
        choices.append([(key, yaml.safe_load(v)) for v in values])
    return [dict(combo) for combo in itertools.product(*choices)]


def params_problems(sets: list[str]) -> list[str]:
    """What rnngan.config says about params.yaml with these `-S` overrides applied."""
    from rnngan.config import ParamsError, parse_params

    base = yaml.safe_load((PROJECT / "params.yaml").read_text())
    problems = []
    try:
        combos = _overrides(sets)
    except ValueError as exc:
        return [str(exc)]
    for combo in combos:
        params = json.loads(json.dumps(base))
        for dotted, value in combo.items():
            *parents, leaf = dotted.split(".")
            node = params
            for p in parents:
                node = node.setdefault(p, {}) if isinstance(node, dict) else node
            if not isinstance(node, dict):
                problems.append(f"-S {dotted}: {'.'.join(parents)} is not a section")
                break
            node[leaf] = value
        else:
            try:
                parse_params(params)
            except ParamsError as exc:
                problems.append(f"-S {', '.join(f'{k}={v}' for k, v in combo.items())}: {exc}")
    return problems


# dvc commands whose positional `targets` are stages, matrix groups or output paths
TARGETED = {"repro", "pull", "push", "commit", "checkout", "status", "fetch"}


def target_problems(targets: list[str], stages: dict[str, list[str]]) -> list[str]:
    groups = {name.split("@")[0] for name in stages}
    outputs = [o for outs in stages.values() for o in outs]
    problems = []
    for t in targets:
        if "/" in t:
            if not any(o == t or o.startswith(t.rstrip("/") + "/") for o in outputs):
                problems.append(f"{t}: no stage writes this path")
        elif t not in stages and t not in groups and t != "dvc.yaml":
            problems.append(f"{t}: no such stage or matrix group")
    return problems


def dvc_problems(args: list[str], stages: dict[str, list[str]]) -> list[str]:
    """What DVC's own parser says about `dvc ARGS`, then its `-S` params and its stage targets."""
    from dvc.cli import DvcParserError, parse_args

    out, said = io.StringIO(), io.StringIO()
    # note: DVC's parser prints its usage but logs the error itself (logger "dvc")
    handler = logging.StreamHandler(said)
    logging.getLogger("dvc").addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            ns = parse_args(list(args))
    except DvcParserError:
        return [f"dvc rejects it: {said.getvalue().strip() or out.getvalue()[-300:]}"]
    except SystemExit as exc:   # --help
        return [] if exc.code in (0, None) else [f"dvc exited {exc.code}: {out.getvalue()[-300:]}"]
    finally:
        logging.getLogger("dvc").removeHandler(handler)
    problems = params_problems(getattr(ns, "set_param", None) or [])
    words = [a for a in args if not a.startswith("-")]
    if words and words[0] in TARGETED and getattr(ns, "targets", None):
        problems += target_problems(list(ns.targets), stages)
    return problems


def command_problems(argv: list[str], stages: dict[str, list[str]]) -> list[str]:
    return rnngan_problems(argv[1:]) if argv[0] == "rnngan" else dvc_problems(argv[1:], stages)


def is_cheap(argv: list[str]) -> bool:
    """Commands that run as written in seconds and change nothing outside their working copy."""
    tool, args = argv[0], argv[1:]
    if "--help" in args:
        return True
    if tool == "rnngan":
        return bool(args) and args[0] in ("check", "info")
    words = [a for a in args if not a.startswith("-")]
    return (words[:2] in (["stage", "list"], ["params", "diff"], ["metrics", "show"], ["metrics", "diff"],
                          ["exp", "show"], ["dag"])
            # note: without a target, `dvc repro --dry` needs the data stages' outputs (it hashes
            # data/raw/<dataset> for preprocess), which a fresh copy does not have
            or (words[:1] == ["repro"] and "--dry" in args and len(words) > 1)
            or (words[:1] == ["status"] and not {"-c", "--cloud"} & set(args)))


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The project's files in a fresh git repository on branch main, with the committed lock and
    metrics: what the cheap commands run in, so that nothing is written into the checkout."""
    import shutil

    from project import make_repo

    r = make_repo(tmp_path_factory.mktemp("docs") / "project", {})
    for f in ("dvc.lock", "reports/metrics.json"):
        (r.root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT / f, r.root / f)
    r.commit("lock and metrics")
    r.run("git", "branch", "-M", "main")
    listed = r.dvc("stage", "list").stdout
    r.stages = {}
    for line in listed.splitlines():
        name, _, outs = line.partition(" ")
        outs = outs.strip()
        r.stages[name] = [o.strip() for o in outs.removeprefix("Outputs").split(",") if o.strip()]
    return r


def test_docs_show_commands_to_check():
    commands = all_commands()
    assert len(commands) > 40, commands
    assert {"rnngan", "dvc"} <= {argv[0] for _, argv in commands}
    assert any(argv[:2] == ["dvc", "repro"] for _, argv in commands)


def test_every_documented_command_names_real_commands_options_and_params(copy):
    problems = [f"{where}: {' '.join(argv)}\n    {p}" for where, argv in all_commands()
                for p in command_problems(argv, copy.stages)]
    assert not problems, "\n".join(problems)


def test_cheap_documented_commands_run_as_written(copy):
    ran, failed = set(), []
    for where, argv in all_commands():
        if not is_cheap(argv) or tuple(argv) in ran:
            continue
        ran.add(tuple(argv))
        r = copy.dvc(*argv[1:], check=False) if argv[0] == "dvc" else copy.run(*argv, check=False)
        if r.returncode != 0:
            failed.append(f"{where}: {' '.join(argv)} exited {r.returncode}\n{r.stdout[-500:]}{r.stderr[-500:]}")
    assert len(ran) >= 8, ran
    assert not failed, "\n".join(failed)


BROKEN = [
    "rnngan compare --formatt md",                   # no such option
    "rnngan generat models/lstm-0/generator.pt",     # no such command
    "rnngan generate",                               # missing argument
    "rnngan generate g.pt --count many",             # not an int
    "dvc queue strat",                               # no such dvc subcommand
    "dvc repro --dryy",                              # no such dvc option
    "dvc exp run -S model.celll=gru",                # no such params key
    "dvc exp run -S modle.cell=gru",                 # no such params section
    "dvc exp run -S model.cell=transformer",         # no such variant
    "dvc exp run --queue -S 'model.hidden=64,-1'",   # one value of a sweep is bad
    "dvc exp run -S model.hidden",                   # not key=value
    "dvc pull train@gru-9",                          # no such stage (seed 9 is not in train.seeds)
    "dvc pull models/transformer-0",                 # no stage writes it
]


@pytest.mark.parametrize("command", BROKEN)
def test_command_check_catches_a_broken_command(command, copy):
    assert command_problems(shlex.split(command), copy.stages), f"{command!r} passed the check"


def test_command_extraction_finds_chained_continued_and_prompted_commands():
    text = ("```bash\nbash setup.sh && . .venv/bin/activate && dvc repro   # comment\n"
            "dvc exp run \\\n  -S model.cell=gru\nls | rnngan info\n```\n"
            "```\n$ rnngan check\noutput line\n```\n```text\nrnngan not-a-command\n```\n")
    assert [argv for _, argv in shell_commands(text)] == [
        ["dvc", "repro"], ["dvc", "exp", "run", "-S", "model.cell=gru"], ["rnngan", "info"], ["rnngan", "check"]]


# --- the links ---------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The page without its code blocks (a `# comment` in a shell block is no heading)."""
    return re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings."""
    seen, out = {}, set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", _prose(text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def link_problems(page: Path, text: str) -> list[str]:
    problems = []
    for target in LINK.findall(_prose(text)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            if dest not in WRITTEN_BY_SCREEN:
                problems.append(f"{page.relative_to(PROJECT)}: {target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{page.relative_to(PROJECT)}: {target}: no such heading in {dest.name}")
    return problems


def test_every_relative_link_resolves():
    problems = [p for page in PAGES for p in link_problems(page, page.read_text())]
    assert not problems, "\n".join(problems)


def test_readme_links_every_docs_page():
    linked = {m for m in LINK.findall(README.read_text()) if m.startswith("docs/")}
    pages = {f"docs/{p.name}" for p in PAGES[1:]}
    assert pages <= {m.partition("#")[0] for m in linked}, pages - linked


def test_link_check_catches_a_broken_link_and_anchor():
    text = "[a](docs/no-such-page.md) [b](docs/metrics.md#no-such-heading) [c](#the-answer-so-far)"
    problems = link_problems(README, text)
    assert len(problems) == 2 and "no such file" in problems[0] and "no such heading" in problems[1]


# --- the citation ------------------------------------------------------------------------------

def test_citation_names_the_package_version_and_license():
    import tomllib

    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((PROJECT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert str(citation["version"]) == project["version"], "CITATION.cff's version is not pyproject's"
    license = project["license"]["text"] if isinstance(project["license"], dict) else project["license"]
    assert citation["license"] == license == "MIT"
    assert (PROJECT / "LICENSE").read_text().startswith("MIT License")
