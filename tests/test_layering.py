"""Layering: kernels <- core <- everything else. core/ and kernels/ are pure torch.

Two checks. The static one reads every import statement in core/ and kernels/ with `ast` (module
level and inside functions, `import x`, `from x import y`, relative imports resolved against the
file's package, `importlib.import_module("...")` literals), so an import hidden in a function that
no test calls is still caught. The dynamic one imports every core and kernels module with
ComfyUI's modules blocked. The checker is tested on planted violations, through the same function.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the repository root is the package `kinema`
PACKAGE = "kinema"

# ComfyUI's top-level modules (a custom node sees them on sys.path).
HOST_MODULES = frozenset({"comfy", "comfy_api", "comfy_extras", "comfy_execution", "comfy_config", "folder_paths",
                          "server", "execution", "nodes", "node_helpers", "latent_preview"})
# Folders of this repository above core; `import bench` works from the repository root, so the bare
# names are caught as well as `kinema.bench`.
UPPER_FOLDERS = frozenset({"nodes", "cli", "demo", "bench", "scripts", "tests"})
# Which of kinema's subpackages each checked layer may import (anything else in kinema is above it).
ALLOWED = {"core": ("core", "kernels"), "kernels": ("kernels",)}


@dataclass(frozen=True)
class Violation:
    file: str  # relative to the scanned root, e.g. "core/upscale/training.py"
    line: int
    imported: str  # the module as resolved, e.g. "kinema.demo.dataset"
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.imported} ({self.why})"


def module_name(root: Path, file: Path) -> tuple[str, str]:
    """(module, package) of a source file under `root`: core/upscale/x.py -> kinema.core.upscale.x, ...upscale."""
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        name = ".".join([PACKAGE, *parts[:-1]])
        return name, name
    return ".".join([PACKAGE, *parts]), ".".join([PACKAGE, *parts[:-1]])


def resolve(name: str, level: int, package: str) -> Optional[str]:
    """Absolute module of `from <level dots><name> import ...` inside `package`; None if it climbs out."""
    if level == 0:
        return name
    base = package.split(".")
    if level - 1 >= len(base):
        return None
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _literal(node: Optional[ast.AST]) -> Optional[str]:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_import_call(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name in ("import_module", "__import__")


def read_imports(source: str, package: str) -> Iterator[tuple[int, Optional[str], str]]:
    """(line, absolute module or None, the import as written) for every import in the source.

    None: a relative import that climbs above the top package, or an `import_module` whose
    name is not a string literal (nothing static can say what it loads)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            written = f"from {'.' * node.level}{node.module or ''} import {', '.join(a.name for a in node.names)}"
            base = resolve(node.module or "", node.level, package)
            if base is None:
                yield node.lineno, None, written
            elif base == PACKAGE or not node.module:  # `from kinema import x`, `from .. import x`: x is the module
                for alias in node.names:
                    yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}", written
            else:
                yield node.lineno, base, written
        elif isinstance(node, ast.Call) and _is_import_call(node):
            name = _literal(node.args[0]) if node.args else _literal(next(
                (k.value for k in node.keywords if k.arg == "name"), None))
            written = ast.unparse(node)
            if name is None:
                yield node.lineno, None, written
                continue
            anchor = _literal(node.args[1]) if len(node.args) > 1 else None  # else __package__: this file's
            level = len(name) - len(name.lstrip("."))
            yield node.lineno, resolve(name[level:], level, anchor or package), written


def rule_broken(layer: str, module: str) -> Optional[str]:
    """Why `layer` (core or kernels) may not import `module`, or None when it may."""
    parts = module.split(".")
    if parts[0] in HOST_MODULES:
        return f"{layer}/ is pure torch and never imports ComfyUI"
    if parts[0] in UPPER_FOLDERS:
        return f"{layer}/ never imports this repository's {parts[0]}/"
    if parts[0] == PACKAGE:
        if len(parts) == 1:
            return f"{layer}/ imports what it uses from kinema.<subpackage>, never the package root (nodes/ hang off it)"
        if parts[1] not in ALLOWED[layer]:
            allowed = ", ".join(f"kinema.{p}" for p in ALLOWED[layer])
            return f"{layer}/ may import only {allowed} from kinema"
    return None


def layering_violations(root: Path) -> list[Violation]:
    """Every import in `root`/core and `root`/kernels that breaks the layering, with file and line."""
    found = []
    for layer in ALLOWED:
        for file in sorted((root / layer).rglob("*.py")):
            _, package = module_name(root, file)
            relative = file.relative_to(root).as_posix()
            for line, module, written in read_imports(file.read_text(encoding="utf-8"), package):
                if module is None:
                    found.append(Violation(relative, line, written, "a dynamic or out-of-package import the layering "
                                           "check cannot read; name the module with a string literal"))
                elif (why := rule_broken(layer, module)) is not None:
                    found.append(Violation(relative, line, module, why))
    return found


# ---- the source tree -----------------------------------------------------------------------------

def test_core_and_kernels_import_nothing_above_them():
    violations = layering_violations(ROOT)
    assert not violations, "layering broken:\n" + "\n".join(map(str, violations))


def test_the_checker_reads_the_real_tree():
    """Not vacuous: the real sources resolve to the modules they name (relative, nested, absolute)."""
    assert module_name(ROOT, ROOT / "core" / "upscale" / "__init__.py") == ("kinema.core.upscale",) * 2
    assert module_name(ROOT, ROOT / "core" / "dit" / "model.py") == ("kinema.core.dit.model", "kinema.core.dit")
    modules = set()
    for file in (ROOT / "core").rglob("*.py"):
        source = file.read_text(encoding="utf-8")
        modules |= {module for _, module, _ in read_imports(source, module_name(ROOT, file)[1])}
    assert {"torch", "kinema.kernels.attention", "kinema.core.progress", "kinema.core.checkpoints.io"} <= modules


# ---- the checker on planted violations -----------------------------------------------------------

def _plant(root: Path, target: str, source_file: Path, line: str) -> int:
    """Copy `source_file` to root/target with `line` added as the first statement of its first
    function; returns the planted line's number."""
    text = source_file.read_text(encoding="utf-8")
    function = next(n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef))
    first = function.body[0]
    lines = text.splitlines(keepends=True)
    lines.insert(first.lineno - 1, " " * first.col_offset + line + "\n")
    path = root / target
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    ast.parse(path.read_text(encoding="utf-8"))  # still valid Python
    return first.lineno


SMALL_CORE_MODULE = ROOT / "core" / "progress.py"


@pytest.mark.parametrize("target,planted,imported", [
    ("core/progress.py", "from ..demo import dataset", "kinema.demo"),
    ("core/progress.py", "from kinema.demo import x", "kinema.demo"),
    ("core/progress.py", "from .. import nodes", "kinema.nodes"),
    ("core/upscale/progress.py", "from ...cli.run import main", "kinema.cli.run"),
    ("core/progress.py", "import comfy.model_management", "comfy.model_management"),
    ("core/progress.py", "import folder_paths", "folder_paths"),
    ("core/progress.py", "import bench.latent_upscale", "bench.latent_upscale"),
    ("core/progress.py", "importlib.import_module('comfy_extras.nodes_wan')", "comfy_extras.nodes_wan"),
    ("core/progress.py", "importlib.import_module('..scripts', 'kinema.core')", "kinema.scripts"),
    ("core/upscale/progress.py", "import_module('...demo.dataset')", "kinema.demo.dataset"),
    ("kernels/progress.py", "from ..core import layers", "kinema.core"),
    ("kernels/progress.py", "from kinema.core.vae import load_vae", "kinema.core.vae"),
])
def test_the_checker_reports_a_planted_import_with_file_and_line(tmp_path, target, planted, imported):
    line = _plant(tmp_path, target, SMALL_CORE_MODULE, planted)
    assert layering_violations(tmp_path) == [Violation(target, line, imported, rule_broken(target.split("/")[0],
                                                                                           imported))]


@pytest.mark.parametrize("planted", [
    "importlib.import_module(name)",  # not a literal: nothing static can say what it loads
    "from ....... import x",  # climbs above the package
])
def test_the_checker_refuses_imports_it_cannot_read(tmp_path, planted):
    line = _plant(tmp_path, "core/progress.py", SMALL_CORE_MODULE, planted)
    [violation] = layering_violations(tmp_path)
    assert (violation.file, violation.line) == ("core/progress.py", line)
    assert "cannot read" in violation.why


@pytest.mark.parametrize("target,planted", [
    ("core/progress.py", "from ..kernels.attention import attention"),
    ("core/upscale/progress.py", "from ..vae import load_vae"),
    ("core/progress.py", "importlib.import_module('kinema.core.vae')"),
    ("kernels/progress.py", "from .attention import attention"),
    ("core/progress.py", "import numpy"),
])
def test_the_checker_lets_allowed_imports_pass(tmp_path, target, planted):
    _plant(tmp_path, target, SMALL_CORE_MODULE, planted)
    assert layering_violations(tmp_path) == []


# ---- importing with ComfyUI blocked --------------------------------------------------------------

BLOCKER = r"""
import sys, importlib.abc
HOST = %r
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in HOST:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import pkgutil, importlib, kinema.core, kinema.kernels
for pkg in (kinema.core, kinema.kernels):
    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):
        importlib.import_module(mod.name)
above = sorted(m for m in sys.modules if m.startswith('kinema.') and m.split('.')[1] not in ('core', 'kernels'))
assert not above, 'core/kernels imported ' + ', '.join(above)
print('ok')
""" % (sorted(HOST_MODULES),)


def test_core_and_kernels_import_without_comfy():
    out = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
