"""The download step, for real: an HTTP server on 127.0.0.1 serves the recipe files from the
shared data folder and the workflow's own code path fetches them."""

from __future__ import annotations

import functools
import http.server
import socket
import threading

import pytest
import yaml

from conftest import REPO, run_snakemake
from nanoforge.download import DownloadError, fetch, sha256sum

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def http_root(shared_data):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    root = str(shared_data / "recipes")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def default_files() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())["download"]["files"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_over_http_verifies_checksum(http_root, tmp_path, shared_data):
    sha = default_files()["recipes_processed.csv"]["sha256"]
    dest = fetch("recipes_processed.csv", f"{http_root}/recipes_processed.csv", sha, tmp_path / "r" / "x.csv")
    assert dest.is_file()
    assert sha256sum(dest) == sha == sha256sum(shared_data / "recipes" / "recipes_processed.csv")


def test_checksum_mismatch_leaves_nothing(http_root, tmp_path):
    dest = tmp_path / "shapes_list.txt"
    with pytest.raises(DownloadError, match="checksum mismatch for shapes_list.txt"):
        fetch("shapes_list.txt", f"{http_root}/shapes_list.txt", "0" * 64, dest)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_on_server(http_root, tmp_path):
    with pytest.raises(DownloadError, match="could not download nope.csv.*save it as"):
        fetch("nope.csv", f"{http_root}/nope.csv", "0" * 64, tmp_path / "nope.csv")
    assert list(tmp_path.iterdir()) == []


def test_offline_message_says_where_to_put_the_file(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/recipes_processed.csv"
    with pytest.raises(DownloadError) as err:
        fetch("recipes_processed.csv", url, "0" * 64, tmp_path / "res" / "recipes_processed.csv", timeout=5)
    msg = str(err.value)
    assert "by hand" in msg and str(tmp_path / "res" / "recipes_processed.csv") in msg


def test_mirror_is_used_before_network(tmp_path, shared_data):
    sha = default_files()["shapes_list.txt"]["sha256"]
    url = f"http://127.0.0.1:{free_port()}/never-contacted"
    dest = fetch("shapes_list.txt", url, sha, tmp_path / "s.txt",
                 mirrors=[str(tmp_path / "missing"), str(shared_data / "recipes")])
    assert sha256sum(dest) == sha


@pytest.mark.workflow
def test_workflow_downloads_missing_inputs(http_root, workdir):
    files = default_files()
    for name in files:
        files[name]["url"] = f"{http_root}/{name}"
        (workdir / "resources" / "recipes" / name).unlink()
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["download"] = {"mirrors": [], "files": files}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"resources/recipes/{n}" for n in files]
    run_snakemake(workdir, *targets)
    for name, spec in files.items():
        assert sha256sum(workdir / "resources" / "recipes" / name) == spec["sha256"]


@pytest.mark.workflow
def test_workflow_checksum_mismatch_fails_clearly(http_root, workdir):
    files = default_files()
    files["shapes_list.txt"] = {"url": f"{http_root}/shapes_list.txt", "sha256": "1" * 64}
    (workdir / "resources" / "recipes" / "shapes_list.txt").unlink()
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["download"] = {"mirrors": [], "files": files}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(workdir, "resources/recipes/shapes_list.txt", check=False)
    assert proc.returncode != 0
    log = (workdir / "results" / "logs" / "download_recipe_dataset" / "shapes_list.txt.log").read_text()
    assert "checksum mismatch for shapes_list.txt" in log
    assert not (workdir / "resources" / "recipes" / "shapes_list.txt").exists()
