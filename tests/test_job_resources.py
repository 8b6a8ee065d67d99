"""Declared job memory scales with the input: ingest_tem asks for 1000 MB plus 35 MB per
megapixel of the largest image (measured peak: about 31 MB per megapixel), read from the
image headers (nanoforge.job_resources)."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import run_snakemake, tem_workdir
from nanoforge.job_resources import image_pixels, ingest_tem_mem_mb, largest_image_mpx


def png_header(path, width, height):
    """A PNG signature and IHDR chunk only: enough for a header reader, no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)


def test_header_pixel_counts_match_the_readers(tmp_path):
    Image.fromarray(np.zeros((30, 70), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((20, 10, 3), np.uint8)).save(tmp_path / "c.jpg")
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((40, 50), np.uint16))
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((60, 80), np.uint16), bigtiff=True, byteorder=">")
    # a thumbnail first and the image second (as some microscopes write them)
    with tifffile.TiffWriter(tmp_path / "two.tif") as tw:
        tw.write(np.zeros((8, 8), np.uint8))
        tw.write(np.zeros((90, 100), np.uint8))
    assert image_pixels(tmp_path / "a.png") == 30 * 70
    assert image_pixels(tmp_path / "c.jpg") == 20 * 10
    assert image_pixels(tmp_path / "b.tif") == 40 * 50
    assert image_pixels(tmp_path / "big.tif") == 60 * 80
    assert image_pixels(tmp_path / "two.tif") == 90 * 100
    (tmp_path / "notes.csv").write_text("a,b\n")
    (tmp_path / "broken.tif").write_bytes(b"II*\x00\xff\xff")
    assert image_pixels(tmp_path / "notes.csv") == 0
    assert image_pixels(tmp_path / "broken.tif") == 0


def test_memory_grows_with_the_largest_image(tmp_path):
    (tmp_path / "sub").mkdir()
    png_header(tmp_path / "small.png", 1000, 1000)
    png_header(tmp_path / "sub" / "large.png", 12000, 12000)
    assert largest_image_mpx([tmp_path]) == pytest.approx(144.0)
    # 12000 x 12000 peaked at 4485 MB (TIFF) / 4479 MB (PNG): the old 4000 MB was too little
    assert ingest_tem_mem_mb([tmp_path]) == 1000 + 35 * 144
    assert ingest_tem_mem_mb([tmp_path / "sub" / "large.png"]) == 6040
    # before the dataset folders exist (a dry run): the base figure
    assert ingest_tem_mem_mb([tmp_path / "missing"]) == 1000


@pytest.mark.workflow
def test_ingest_tem_declares_memory_from_its_images(tmp_path, shared_data):
    from conftest import copy_inputs

    copy_inputs(shared_data, tmp_path)
    tem_workdir(tmp_path, shared_data, ["sophon_example"])
    png_header(tmp_path / "resources" / "tem" / "sophon_example" / "images" / "huge.png", 12000, 12000)
    proc = run_snakemake(tmp_path, "-n", "results/tem/images.parquet", timeout=300)
    out = proc.stdout + proc.stderr
    block = out[out.index("rule ingest_tem:"):]
    block = block[:block.index("\n\n")] if "\n\n" in block else block
    assert re.search(r"\bmem_mb=6040\b", block), block
