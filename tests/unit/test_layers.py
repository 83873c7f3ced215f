"""Dependencies point one way: wire < providers < routing < gateway (README, Architecture).

Every import of every module counts, also those inside functions (a lazy import that
dodges a cycle is still an upward dependency). Tests, manage.py and migrations are not
checked: they sit above everything (migrations name the field classes they serialise)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("providers", "routing", "gateway")

# The bottom layer: pure Python (no Django), the wire formats and what they need.
WIRE = ("providers.codecs", "providers.aws", "providers.upstream_client", "providers.config")
LAYERS = {"wire": 0, "providers": 1, "routing": 2, "gateway": 3}


def layer_of(module: str) -> str | None:
    if any(module == w or module.startswith(w + ".") for w in WIRE):
        return "wire"
    top = module.split(".")[0]
    return top if top in PACKAGES else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from providers import http` names a module too: check `providers.http`.
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def project_modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            yield path, module_name(path)


def resolve(name: str) -> str:
    """`providers.codecs.errors.GatewayError` → the longest prefix that is a module or package."""
    parts = name.split(".")
    while parts:
        candidate = ROOT.joinpath(*parts)
        if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
            return ".".join(parts)
        parts.pop()
    return name


def test_every_import_points_down_or_sideways():
    upward = []
    for path, module in project_modules():
        own = layer_of(module)
        for line, target in imports(path, module):
            target = resolve(target)
            theirs = layer_of(target)
            if theirs is not None and LAYERS[theirs] > LAYERS[own]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {target} ({theirs})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_wire_layer_does_not_use_django():
    found = []
    for path, module in project_modules():
        if layer_of(module) == "wire":
            found += [f"{path.relative_to(ROOT)}:{line} imports {target}"
                      for line, target in imports(path, module)
                      if target.split(".")[0] in ("django", "celery", "channels", "daphne")]
    assert not found, "\n".join(found)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    source = ROOT / "routing" / "tasks.py"
    names = {resolve(t) for _, t in imports(source, "routing.tasks")}
    assert "routing.health" in names  # relative, module level
    assert layer_of("providers.codecs.openai_chat") == "wire" and layer_of("providers.models") == "providers"
    assert layer_of("providers.configuration") == "providers"
