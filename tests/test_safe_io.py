"""nanoforge.safe_io: YAML and PyTorch checkpoints are read without running code from them, and
no loader of the project reads a file any other way."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
import torch

from conftest import malicious_checkpoint, malicious_yaml
from nanoforge.safe_io import UnreadableFileError, UnsafeFileError, load_yaml_safely
from nanoforge.safe_torch import load_torch_state

REPO = Path(__file__).resolve().parents[1]


def test_the_malicious_files_do_run_code_when_loaded_unsafely(tmp_path):
    """The payloads of the tests below are live: an unsafe loader runs them."""
    import yaml

    marker = tmp_path / "MARKER"
    yaml.load(malicious_yaml(tmp_path / "evil.yaml", marker).read_text(), Loader=yaml.UnsafeLoader)  # noqa: unsafe-load
    assert marker.exists()
    marker.unlink()
    torch.load(malicious_checkpoint(tmp_path / "evil.pth", marker), weights_only=False)  # noqa: unsafe-load
    assert marker.exists()
    marker.unlink()
    with open(malicious_checkpoint(tmp_path / "evil.pkl", marker, legacy=True), "rb") as fh:
        pickle.load(fh)  # noqa: unsafe-load
    assert marker.exists()


def test_yaml_with_a_python_tag_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "MARKER"
    path = malicious_yaml(tmp_path / "evil.yaml", marker)
    refused = r"evil\.yaml, line 3: refused the YAML tag !!python/object/apply:os\.system"
    with pytest.raises(UnsafeFileError, match=refused):
        load_yaml_safely(path)
    assert not marker.exists()
    custom = tmp_path / "custom.yaml"
    custom.write_text("a: !secret x\n")
    with pytest.raises(UnsafeFileError, match=r"custom\.yaml, line 1: refused the YAML tag !secret"):
        load_yaml_safely(custom)


def test_yaml_plain_data_loads(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("a: [1, 2.5, x]\nb: {c: true, d: null}\n")
    assert load_yaml_safely(good) == {"a": [1, 2.5, "x"], "b": {"c": True, "d": None}}
    with pytest.raises(FileNotFoundError):
        load_yaml_safely(tmp_path / "missing.yaml")


@pytest.mark.parametrize("content, message", [
    (b"a: [1,\n", r"bad\.yaml: not valid YAML"),
    (b"? [a, b]\n: 1\n", r"bad\.yaml, line 1: not valid YAML data"),
    (b"\xff\xfe\x00a", r"bad\.yaml: not UTF-8"),
], ids=["syntax", "unhashable-key", "binary"])
def test_broken_yaml_names_the_file(tmp_path, content, message):
    (tmp_path / "bad.yaml").write_bytes(content)
    with pytest.raises(UnreadableFileError, match=message):
        load_yaml_safely(tmp_path / "bad.yaml")


@pytest.mark.parametrize("legacy", [False, True], ids=["torch-zip", "plain-pickle"])
def test_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path, legacy):
    marker = tmp_path / "MARKER"
    path = malicious_checkpoint(tmp_path / "evil.pth", marker, legacy)
    what = r"it holds objects other than tensors" if legacy else r"it would import (posix|os|nt)\.system"
    with pytest.raises(UnsafeFileError, match=r"evil\.pth: refused to load: " + what):
        load_torch_state(path)
    assert not marker.exists()


def test_checkpoint_of_tensors_loads(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"model": {"w": torch.arange(3.0)}, "iteration": 7, "meta": {"lr": [0.1, 0.2]}}, good)
    state = load_torch_state(good)
    assert state["iteration"] == 7 and torch.equal(state["model"]["w"], torch.arange(3.0))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_torch_state(tmp_path / "missing.pth")


def _damaged(path: Path, how: str) -> None:
    """A checkpoint cut in half, an empty file, or a checkpoint of a list."""
    if how == "list":
        torch.save([torch.zeros(1)], path)
        return
    torch.save({"model": {"w": torch.arange(1000.0)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"")


@pytest.mark.parametrize("how, message", [
    ("truncated", r"bad\.pth: not a readable PyTorch checkpoint \(truncated or damaged\?\)"),
    ("empty", r"bad\.pth: not a readable PyTorch checkpoint"),
    ("list", r"bad\.pth: expected a dict"),
])
def test_damaged_checkpoint_names_the_file(tmp_path, how, message):
    _damaged(tmp_path / "bad.pth", how)
    with pytest.raises(UnreadableFileError, match=message):
        load_torch_state(tmp_path / "bad.pth")


# Ways of reading a file that can run code from it; nanoforge.safe_io is the one place that
# reads YAML and checkpoints (its torch.load passes weights_only=True).
PICKLERS = {"pickle", "_pickle", "cloudpickle", "dill", "joblib", "marshal", "shelve"}
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all"}


def unsafe_calls(source: str) -> list[tuple[int, str]]:
    """``(line, call)`` of every call in Python ``source`` that may run code from a file."""
    found = []
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or lines[node.lineno - 1].endswith("# noqa: unsafe-load"):
            continue  # (a test showing what an unsafe loader does says so on its line)
        func = ast.unparse(node.func)
        base, _, attr = func.rpartition(".")
        kw = {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}
        if ((base in PICKLERS and attr in ("load", "loads", "Unpickler", "open"))
                or (base == "yaml" and attr in UNSAFE_YAML)
                or attr == "read_pickle"
                or kw.get("allow_pickle") == "True"
                or (attr == "merge_from_file" and kw.get("allow_unsafe") != "False")
                or (func == "torch.load" and kw.get("weights_only") != "True")):
            found.append((node.lineno, func))
    return found


def test_no_loader_of_the_project_can_run_code_from_a_file():
    files = [*(REPO / "workflow").rglob("*.py"), *(REPO / "tests").glob("*.py")]
    found = [f"{path.relative_to(REPO)}:{line}: {call}" for path in files
             for line, call in unsafe_calls(path.read_text())]
    assert not found, "read files through nanoforge.safe_io instead:\n" + "\n".join(found)
    # Snakemake files: no loading in rules at all (rules call scripts, scripts the library)
    for path in [REPO / "Snakefile", *(REPO / "workflow").rglob("*.smk")]:
        loading = r"torch\.load|pickle|joblib|yaml\.(unsafe_)?load\(|merge_from_file"
        assert not re.search(loading, path.read_text()), path
    # the guard sees what it should
    assert [c for _, c in unsafe_calls("torch.load(f, map_location='cpu')\ntorch.load(f, weights_only=True)\n"
                                       "cfg.merge_from_file(p)\ncfg.merge_from_file(p, allow_unsafe=False)\n"
                                       "pickle.load(fh)\nyaml.load(t, Loader=L)\nyaml.safe_load(t)\n"
                                       "np.load(p, allow_pickle=True)\n")] == [
        "torch.load", "cfg.merge_from_file", "pickle.load", "yaml.load", "np.load"]
