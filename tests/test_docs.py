"""The documentation stays true to the project: README is a manual of at most 250 lines,
docs/configuration.md lists every key of the config schema, relative links resolve, and no
file points to a design document that is not part of the project."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import yaml

from conftest import copy_inputs, run_snakemake, tem_workdir
from nanoforge.config import ConfigError, merge_overlay, validate_config

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SKIP_DIRS = {".git", ".venv", "results", "resources", ".snakemake", "__pycache__", ".pytest_cache"}
TEXT_SUFFIXES = {".py", ".smk", ".yaml", ".yml", ".md", ".rst", ".sh", ".txt", ".toml", ".cfg", ""}
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)")


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page (lower case, punctuation
    dropped, spaces to hyphens)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    out = set()
    for title in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def schema_key_paths(spec: dict, path: str = "") -> list[str]:
    """Every key of a config JSON schema as a dotted path (``<name>`` for the entries of a
    mapping, ``[]`` for the items of a list), as docs/configuration.md writes them."""
    out = []
    for key, sub in (spec.get("properties") or {}).items():
        p = f"{path}.{key}" if path else key
        out.append(p)
        out += schema_key_paths(sub, p)
    extra = spec.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("properties"):
        out += schema_key_paths(extra, f"{path}.<name>")
    items = spec.get("items")
    if isinstance(items, dict) and items.get("properties"):
        out += schema_key_paths(items, f"{path}[]")
    return out


def project_text_files():
    for p in REPO.rglob("*"):
        rel = p.relative_to(REPO)
        if any(part in SKIP_DIRS for part in rel.parts) or not p.is_file():
            continue
        if p.suffix in TEXT_SUFFIXES and p.stat().st_size < 1_000_000:
            yield p


def test_schema_key_paths_walks_mappings_and_lists():
    spec = {"properties": {"a": {"properties": {"b": {}}},
                           "m": {"additionalProperties": {"properties": {"k": {}}}},
                           "l": {"items": {"properties": {"n": {}}}}}}
    assert schema_key_paths(spec) == ["a", "a.b", "m", "m.<name>.k", "l", "l[].n"]


def test_configuration_doc_lists_every_schema_key():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    text = (DOCS / "configuration.md").read_text()
    missing = [k for k in schema_key_paths(schema) if f"`{k}`" not in text]
    assert not missing, f"docs/configuration.md does not describe config key(s): {missing}"


def test_readme_is_a_short_manual():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; measurements belong in docs/results/"
    first_screen = "\n".join(lines[:40])
    assert "make run" in first_screen and "make test" in first_screen


def test_anchors_follow_github_headings():
    page = DOCS / "configuration.md"
    assert {"tem", "the-gpu-overlay-configgpuyaml"} <= anchors(page)
    assert "evaluation-protocols-p-g-u" in anchors(DOCS / "architecture.md")


def test_relative_links_in_readme_and_docs_resolve():
    pages = [REPO / "README.md", REPO / "CHANGELOG.md", *DOCS.rglob("*.md")]
    broken = []
    for page in pages:
        for target, anchor in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            dest = page.parent / target if target else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(REPO)} -> {target}#{anchor}")
    assert not broken, f"broken links: {broken}"


def test_no_file_cites_the_outside_design_document():
    name = "DESIGN" + ".md"  # spelled in two parts so that this file does not cite it
    citing = [str(p.relative_to(REPO)) for p in project_text_files() if name in p.read_text(errors="ignore")]
    assert not citing, f"{name} is not part of the project; cite docs/architecture.md instead: {citing}"


def test_config_examples_in_the_docs_are_valid():
    """Every YAML example of README and docs/, merged into config.yaml as an overlay, passes
    the config schema."""
    failures = []
    for page in [REPO / "README.md", *DOCS.rglob("*.md")]:
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)):
            cfg = yaml.safe_load((REPO / "config.yaml").read_text())
            merge_overlay(cfg, yaml.safe_load(block))  # as Snakemake merges a --configfile
            try:
                validate_config(cfg)
            except ConfigError as exc:
                failures.append(f"{page.relative_to(REPO)} example {i + 1}: {exc}")
    assert not failures, "\n".join(failures)


def test_readme_own_tem_images_example_runs(tmp_path, shared_data):
    """README's "Use your own data" TEM example, as an overlay on the tiny config with its path
    pointing at a folder of microscope files, ingests those images with their pixel size and
    sample, and lists the files it cannot use with their reason."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### TEM images"):]
    overlay = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    (name, spec), = overlay["tem"]["datasets"].items()
    spec["path"] = str(shared_data / "tem" / "formats")
    copy_inputs(shared_data, tmp_path)
    tem_workdir(tmp_path, shared_data, ["pbse_fig2b", "emps_dev", "yolo_boxes"])
    (tmp_path / "my.yaml").write_text(yaml.safe_dump(overlay))
    run_snakemake(tmp_path, "results/tem/images.parquet",
                  "--configfile", str(tmp_path / "config.yaml"), str(tmp_path / "my.yaml"))
    images = pl.read_parquet(tmp_path / "results/tem/images.parquet").filter(pl.col("dataset") == name)
    rejected = pl.read_parquet(tmp_path / "results/tem/rejected_images.parquet").filter(pl.col("dataset") == name)
    assert images.height >= 2 and images["nm_per_px"].is_not_null().all()
    assert set(images["sample_id"]) == {spec["sample_id"]}
    assert rejected.height >= 1 and rejected["reason"].str.len_chars().min() > 0
