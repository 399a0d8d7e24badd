"""The house rules of fer/: no import loop, no module over 400 lines, no import of the package hidden in a
function, backend-specific imports only in backend.py."""
import ast
import json

from conftest import ROOT

PACKAGE = ROOT / "fer"


def package_imports(path):
    """(module imported, inside a function?) for each import of another fer module in `path`."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom) and (child.level == 1 or (child.module or "").startswith("fer")):
                module = (child.module or "").removeprefix("fer").lstrip(".")
                targets = [module] if module else [alias.name for alias in child.names]
                found.extend((target.split(".")[0], in_function) for target in targets)
            elif isinstance(child, ast.Import):
                found.extend((a.name.split(".")[1], in_function) for a in child.names if a.name.startswith("fer."))
            visit(child, nested)

    visit(tree, False)
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    return [(m, inner) for m, inner in found if m in modules and m != "__init__"]


def import_graph():
    return {path.stem: {m for m, _ in package_imports(path)} for path in PACKAGE.glob("*.py")}


def cycles(graph):
    """Every import loop, as the list of modules along it."""
    loops, state = [], {}

    def walk(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                loops.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    return loops


def test_cycle_finder_finds_a_loop():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_package_has_no_import_loop():
    graph = import_graph()
    assert len(graph) > 15 and graph["training"] >= {"records", "resume", "clock", "inference"}
    assert cycles(graph) == []


def test_no_module_imports_the_package_inside_a_function():
    hidden = {path.name: [m for m, inner in package_imports(path) if inner] for path in PACKAGE.glob("*.py")}
    assert {name: found for name, found in hidden.items() if found} == {}


def test_no_module_is_over_400_lines():
    lengths = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 400} == {}


def test_only_backend_py_imports_a_backend():
    for path in PACKAGE.glob("*.py"):
        if path.name in ("backend.py", "__init__.py"):  # __init__ only quiets TensorFlow's start-up
            continue
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        names |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not names & {"tensorflow", "jax", "torch"}, path.name


def test_the_readme_is_a_guide_not_a_log():
    assert len((ROOT / "README.md").read_bytes()) < 15_000


def test_the_shipped_models_fit_in_40_mb_and_carry_their_records():
    from fer import records

    members = records.ensemble_members(records.SHIPPED_MODEL)
    assert members[0].exists() and sum(path.stat().st_size for path in members) <= 40 * 2**20
    for path in members:
        summary = json.loads(records.summary_path(path).read_text())
        assert summary["weights"] == "float16" and records.history_path(path).exists(), path.name
