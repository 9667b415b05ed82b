"""Every DVC stage's deps list exactly the rnngan code it runs: editing a module reruns the stages
that import it, and only those.

A stage's code is the import closure of `stages/<name>.py` within the `rnngan` package, read from
the AST: `import rnngan.x`, `from rnngan.x import y` (y a submodule or a name), relative imports,
imports inside functions too (the stages import their library lazily), and every package's
`__init__.py` on the way (Python runs it). In `dvc.yaml` a stage may list a module or a folder of
modules; a folder only where every module in it is in the closure, so that no edit of a module
the stage never imports can rerun it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import PROJECT

PACKAGE = "rnngan"


def module_file(root: Path, name: str) -> Path | None:
    """`rnngan.a.b` -> rnngan/a/b.py or rnngan/a/b/__init__.py under root; None for a name that is
    not a module (a function or class imported from one)."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(root: Path, path: Path) -> set[str]:
    """Dotted names of the package's modules that `path` imports anywhere in its body, with the
    packages that contain them."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:      # relative: `from . import x`, `from ..y import z`
                anchor = package[:len(package) - node.level + 1]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module
            # `from rnngan.pkg import mod` imports the submodule mod; `from rnngan.x import f` only x
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if (name == PACKAGE or name.startswith(PACKAGE + ".")) and module_file(root, name):
                pieces = name.split(".")
                found |= {".".join(pieces[:i]) for i in range(1, len(pieces) + 1)}
    return found


def import_closure(root: Path, entry: Path) -> set[str]:
    """Files (relative to root, posix) of every package module that `entry` reaches."""
    seen: set[str] = set()
    todo = imported_modules(root, entry)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo |= imported_modules(root, module_file(root, name)) - seen
    return {module_file(root, name).relative_to(root).as_posix() for name in seen}


def deps_problems(root: Path, closure: set[str], deps: list[str]) -> list[str]:
    """What is wrong with a stage's package deps against its closure, one line each; empty when
    the deps cover the closure exactly, each module once."""
    problems = []
    covered: dict[str, str] = {}
    for dep in deps:
        if not (dep == PACKAGE or dep.startswith(PACKAGE + "/")):
            continue
        path = root / dep
        if path.is_file():
            modules = {dep}
        elif path.is_dir():
            modules = {p.relative_to(root).as_posix() for p in path.rglob("*.py")}
            unused = sorted(modules - closure)
            if unused:
                problems.append(f"{dep}: a folder with modules the stage does not import ({', '.join(unused)}); "
                                "list the modules it does import instead")
                continue
        else:
            problems.append(f"{dep}: no such file or folder")
            continue
        if dep.endswith(".py") and dep not in closure:
            problems.append(f"{dep}: listed, but the stage does not import it")
        for module in modules & set(covered):
            problems.append(f"{module}: listed twice ({covered[module]} and {dep})")
        covered.update(dict.fromkeys(modules, dep))
    for module in sorted(closure - set(covered)):
        problems.append(f"{module}: imported by the stage, but not in its deps")
    return problems


def stage_entry(stage: dict) -> str:
    """stages/<name>.py of the stage's `python -m stages.<name>` command."""
    module = re.search(r"python -m (stages\.\w+)", stage["cmd"])
    assert module, f"not a `python -m stages.<name>` command: {stage['cmd']}"
    return module.group(1).replace(".", "/") + ".py"


STAGES = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_lists_exactly_the_rnngan_modules_it_imports(name):
    stage = STAGES[name]        # matrix stages (train, sample, analyze) share one deps list
    entry = stage_entry(stage)
    closure = import_closure(PROJECT, PROJECT / entry)
    assert "rnngan/stage.py" in closure and "rnngan/errors.py" in closure
    assert [d for d in stage["deps"] if d.startswith("stages/")] == [entry]
    problems = deps_problems(PROJECT, closure, stage["deps"])
    assert problems == [], f"dvc.yaml, stage {name}:\n" + "\n".join(problems)


def test_the_closure_follows_every_form_of_import(tmp_path):
    """A package built here: each form of import reaches the module it names, and nothing else."""
    files = {
        "stages/run.py": "import os\nfrom rnngan.a import helper\n\ndef work():\n    import rnngan.lazy\n",
        "rnngan/__init__.py": "",
        "rnngan/a.py": "from rnngan.pkg import sub, NAME\nfrom .rel import thing\n",
        "rnngan/lazy.py": "",
        "rnngan/rel.py": "from rnngan.pkg.deep.leaf import x\n",
        "rnngan/pkg/__init__.py": "NAME = 1\n",
        "rnngan/pkg/sub.py": "from . import sibling\n",
        "rnngan/pkg/sibling.py": "",
        "rnngan/pkg/deep/__init__.py": "",
        "rnngan/pkg/deep/leaf.py": "x = 1\n",
        "rnngan/pkg/unused.py": "",
        "rnngan/unused.py": "import rnngan.a\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    closure = import_closure(tmp_path, tmp_path / "stages/run.py")
    assert closure == {"rnngan/__init__.py", "rnngan/a.py", "rnngan/lazy.py", "rnngan/rel.py",
                       "rnngan/pkg/__init__.py", "rnngan/pkg/sub.py", "rnngan/pkg/sibling.py",
                       "rnngan/pkg/deep/__init__.py", "rnngan/pkg/deep/leaf.py"}
    exact = ["stages/run.py", "rnngan/__init__.py", "rnngan/a.py", "rnngan/lazy.py", "rnngan/rel.py",
             "rnngan/pkg/__init__.py", "rnngan/pkg/sub.py", "rnngan/pkg/sibling.py", "rnngan/pkg/deep"]
    assert deps_problems(tmp_path, closure, exact) == []
    # a folder holding a module the stage does not import is refused, even though it covers the rest
    problems = deps_problems(tmp_path, closure, [d for d in exact if not d.startswith("rnngan/pkg/")] + ["rnngan/pkg"])
    assert problems[0] == ("rnngan/pkg: a folder with modules the stage does not import (rnngan/pkg/unused.py); "
                           "list the modules it does import instead")
    assert problems[1:] == [f"rnngan/pkg/{m}: imported by the stage, but not in its deps"
                            for m in ("__init__.py", "deep/__init__.py", "deep/leaf.py", "sibling.py", "sub.py")]


def test_the_check_names_a_missing_and_a_superfluous_dep():
    """The real train stage's deps, one module dropped and an unrelated one added."""
    stage = STAGES["train"]
    closure = import_closure(PROJECT, PROJECT / stage_entry(stage))
    assert "rnngan/grids.py" in closure and "rnngan/report/stage.py" not in closure
    broken = [d for d in stage["deps"] if d != "rnngan/grids.py"] + ["rnngan/report/stage.py", "rnngan/nowhere.py"]
    assert deps_problems(PROJECT, closure, broken) == [
        "rnngan/report/stage.py: listed, but the stage does not import it",
        "rnngan/nowhere.py: no such file or folder",
        "rnngan/grids.py: imported by the stage, but not in its deps"]
    twice = stage["deps"] + ["rnngan/grids.py"]
    assert deps_problems(PROJECT, closure, twice) == ["rnngan/grids.py: listed twice (rnngan/grids.py and rnngan/grids.py)"]
