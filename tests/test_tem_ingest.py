"""TEM ingestion: microscope formats with their pixel sizes, sidecar and config calibration,
and every bad file rejected with its reason (files read = images + rejected)."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
import tifffile
from PIL import Image

from nanoforge import tables
from nanoforge.tem.ingest import (
    IMAGES_SCHEMA,
    REJECTED_IMAGES_SCHEMA,
    ImageReadError,
    ingest,
    load_sidecar,
    read_microscope_file,
)
from nanoforge.tem.resources import DatasetError, mirror_dataset, tree_sha256

# formats/README.md of the shared data: file -> pixel size in nm (None: uncalibrated)
EXPECTED_NM = {
    "128x128-TEM_search_1.ser": 5.2612,
    "JEOL-SightX-TEM-mag-dummy.tif": 1.82079,
    "test_STEM_image.dm3": 0.248538,
    "test-1.dm3": None,
    "test-1.dm4": None,
    "test_loading_image_saved_with_DM.tif": 168.675,
    "test_loading_image_saved_with_imageJ.tif": 168.675,
    "test_loading_image_saved_with_imageJ_no_scale.tif": None,
    "fei_example_tem_stack.emd": 0.00817288,
    "example_image.emd": None,
    "olympus_SIS.tif": 0.023928,
}


@pytest.mark.parametrize("name,nm", sorted(EXPECTED_NM.items()))
def test_real_format_files_give_their_pixel_size(shared_data, name, nm):
    raw = read_microscope_file(shared_data / "tem" / "formats" / name)
    assert raw.data.ndim == 2 and np.isfinite(raw.data).all()
    if nm is None:
        assert raw.nm_per_px is None
    else:
        assert raw.nm_per_px == pytest.approx(nm, rel=1e-4)


def test_format_details(shared_data):
    f = shared_data / "tem" / "formats"
    stack = read_microscope_file(f / "fei_example_tem_stack.emd", stack="mean")
    first = read_microscope_file(f / "fei_example_tem_stack.emd", stack="first")
    assert stack.n_frames == 2 and stack.data.shape == (3, 3)
    assert not np.array_equal(stack.data, first.data)
    olympus = read_microscope_file(f / "olympus_SIS.tif")  # the uint16 image, not the RGB thumbnail
    assert olympus.data.shape == (101, 112) and olympus.source_dtype == "uint16"
    with pytest.raises(ImageReadError, match=r"\.emi file holds metadata only"):
        read_microscope_file(f / "128x128-TEM_search.emi")
    # the paper's JEOL TIFF: a palette image whose 72 dpi resolution is not a pixel size
    pbse = read_microscope_file(shared_data / "tem" / "pbse_fig2b" / "5-0011.tif")
    assert pbse.data.shape == (667, 1002) and pbse.source_dtype.startswith("palette")
    assert pbse.nm_per_px is None and "inches" in pbse.calibration_note


def _write_bad_and_good_files(root):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    img16 = (rng.random((64, 80)) * 60000).astype(np.uint16)
    tifffile.imwrite(root / "res_tag16.tif", img16, resolution=(1e7 / 0.5, 1e7 / 0.5), resolutionunit="CENTIMETER")
    tifffile.imwrite(root / "imagej_nm.tif", img16[:40], imagej=True, resolution=(1 / 0.25, 1 / 0.25),
                     metadata={"unit": "nm"})
    tifffile.imwrite(root / "dpi72.tif", img16[:, :50], resolution=(72, 72), resolutionunit="INCH")
    data = (root / "res_tag16.tif").read_bytes()
    (root / "truncated.tif").write_bytes(data[: len(data) // 2])
    (root / "text.tif").write_text("this is not a TIFF file\n")
    (root / "empty.tif").write_bytes(b"")
    gray = (rng.random((48, 64)) * 255).astype(np.uint8)
    Image.fromarray(gray).save(root / "plain.png")
    Image.fromarray(gray[::-1]).save(root / "with_sidecar.png")
    shutil.copyfile(root / "with_sidecar.png", root / "zz_copy.png")  # read after its original
    Image.fromarray(np.full((40, 40), 7, np.uint8)).save(root / "constant.png")
    Image.fromarray(gray[:8, :8]).save(root / "tiny.png")
    pal = Image.fromarray((np.arange(48 * 64).reshape(48, 64) % 200).astype(np.uint8), "P")
    pal.putpalette([v for i in range(256) for v in (i, i, i)])
    pal.save(root / "palette.tif")
    (root / "notes.txt").write_text("lab notes")


def test_ingest_accepts_good_files_and_rejects_bad_ones_with_reasons(tmp_path):
    root = tmp_path / "lab"
    _write_bad_and_good_files(root)
    side = {"entries": [{"image": "with_sidecar.png", "nm_per_px": 0.7, "sample_id": "S7"},
                        {"image": "lab/palette", "nm_per_px": 1.5, "calibration_source": "scale_bar"}]}
    images, rejected = ingest({"lab": {"path": str(root), "images": ["*"]}}, tmp_path / "out", side)
    n_files = len(list(root.iterdir()))
    assert images.height + rejected.height == n_files
    got = {r["image_id"]: r for r in images.iter_rows(named=True)}
    assert set(got) == {"lab/res_tag16", "lab/imagej_nm", "lab/with_sidecar", "lab/palette"}
    assert got["lab/res_tag16"]["nm_per_px"] == pytest.approx(0.5)
    assert got["lab/res_tag16"]["calibration_source"] == "metadata"
    assert got["lab/res_tag16"]["source_dtype"] == "uint16"
    assert got["lab/imagej_nm"]["nm_per_px"] == pytest.approx(0.25)
    assert got["lab/with_sidecar"]["nm_per_px"] == 0.7 and got["lab/with_sidecar"]["calibration_source"] == "sidecar"
    assert got["lab/with_sidecar"]["sample_id"] == "S7"
    assert got["lab/palette"]["calibration_source"] == "scale_bar" and got["lab/palette"]["sample_id"] == "lab"
    out = np.asarray(Image.open(got["lab/res_tag16"]["path"]))
    assert out.dtype == np.uint8 and out.shape == (64, 80) and out.min() == 0 and out.max() == 255
    reasons = {r["source_path"].rsplit("/", 1)[-1]: r["reason"] for r in rejected.iter_rows(named=True)}
    assert set(reasons) == {"dpi72.tif", "truncated.tif", "text.tif", "empty.tif", "plain.png", "zz_copy.png",
                            "constant.png", "tiny.png", "notes.txt"}
    assert "no pixel size" in reasons["dpi72.tif"] and "inches" in reasons["dpi72.tif"]
    assert reasons["truncated.tif"].startswith("unreadable or corrupt TIFF")
    assert reasons["text.tif"].startswith("unreadable or corrupt TIFF") and "not a TIFF" in reasons["text.tif"]
    assert reasons["empty.tif"] == "empty file (0 bytes)"
    assert "no pixel size" in reasons["plain.png"] and "no sidecar entry" in reasons["plain.png"]
    assert reasons["zz_copy.png"] == "duplicate of image lab/with_sidecar (same sha256)"
    assert reasons["constant.png"].startswith("constant image")
    assert reasons["tiny.png"].startswith("too small")
    assert reasons["notes.txt"].startswith("unsupported file type '.txt'")
    assert rejected.filter(pl.col("source_path").str.ends_with("empty.tif"))["sha256"].item() is None


def test_config_calibration_and_keeping_uncalibrated_images(tmp_path):
    root = tmp_path / "figs"
    root.mkdir()
    Image.fromarray((np.random.default_rng(1).random((40, 50)) * 255).astype(np.uint8)).save(root / "a.png")
    images, rejected = ingest({"figs": {"path": str(root), "images": ["*.png"], "nm_per_px": 2.0}},
                              tmp_path / "o1")
    assert images["calibration_source"].to_list() == ["config"] and images["nm_per_px"].to_list() == [2.0]
    images, rejected = ingest({"figs": {"path": str(root), "images": ["*.png"], "uncalibrated": "keep"}},
                              tmp_path / "o2")
    assert rejected.height == 0 and images["nm_per_px"].to_list() == [None]
    assert images["calibration_source"].to_list() == [None]


def test_ingested_tables_are_written_against_their_schemas(tmp_path):
    root = tmp_path / "figs"
    root.mkdir()
    Image.fromarray((np.random.default_rng(1).random((40, 50)) * 255).astype(np.uint8)).save(root / "a.png")
    (root / "b.png").write_bytes(b"")
    images, rejected = ingest({"figs": {"path": str(root), "images": ["*.png"], "nm_per_px": 2.0}}, tmp_path / "o")
    tables.write_table(images, tmp_path / "images.parquet", IMAGES_SCHEMA)
    tables.write_table(rejected, tmp_path / "rejected_images.parquet", REJECTED_IMAGES_SCHEMA)
    assert pl.read_parquet(tmp_path / "images.parquet").equals(images)
    for bad, message in [
        (images.drop("sample_id"), r"results/tem/images.parquet: columns differ: missing \['sample_id'\]"),
        (images.with_columns(pl.lit(-1.0).alias("nm_per_px")), r"nm_per_px: 1 value\(s\) at or below exclusiveMinimum 0"),
        (images.with_columns(pl.lit("ruler").alias("calibration_source")), r"calibration_source: 1 value\(s\) not in"),
        (images.with_columns(pl.col("width").cast(pl.Int32)), "column width has dtype Int32, the schema wants Int64"),
        (pl.concat([images, images]), r"image_id: 2 rows share a value \(e.g. \['figs/a'\]\)"),
    ]:
        with pytest.raises(tables.TableSchemaError, match=message):
            tables.write_table(bad, tmp_path / "bad.parquet", IMAGES_SCHEMA)
    with pytest.raises(tables.TableSchemaError, match=r"rejected_images.parquet: column size_bytes has dtype String"):
        tables.write_table(rejected.with_columns(pl.col("size_bytes").cast(pl.String)), tmp_path / "bad.parquet",
                           REJECTED_IMAGES_SCHEMA)
    assert not (tmp_path / "bad.parquet").exists()


def test_an_optional_column_is_one_line_in_the_schema(tmp_path):
    """How the scale-bar reader (or any later step) adds a column to images.parquet: one
    nullable property in images.schema.yaml, not in `required`. Writers that do not set it
    keep working (the column is written as nulls); rows that set it keep their values."""
    import copy

    schema = copy.deepcopy(IMAGES_SCHEMA)
    schema["properties"]["scale_bar_nm"] = {"type": ["number", "null"], "exclusiveMinimum": 0}
    root = tmp_path / "figs"
    root.mkdir()
    Image.fromarray((np.random.default_rng(1).random((40, 50)) * 255).astype(np.uint8)).save(root / "a.png")
    images, _ = ingest({"figs": {"path": str(root), "images": ["*.png"], "nm_per_px": 2.0}}, tmp_path / "o")
    written = pl.read_parquet(tables.write_table(images, tmp_path / "images.parquet", schema))
    assert written.columns == [*images.columns, "scale_bar_nm"] and written["scale_bar_nm"].to_list() == [None]
    rows = [{**images.row(0, named=True), "scale_bar_nm": 200.0}]
    assert tables.frame(rows, schema)["scale_bar_nm"].to_list() == [200.0]
    with pytest.raises(tables.TableSchemaError, match="scale_bar_nm: 1 value"):
        tables.write_table(images.with_columns(pl.lit(-5.0).alias("scale_bar_nm")), tmp_path / "x.parquet", schema)
    # an optional column in the middle goes to its place; columns out of order stay an error
    schema["properties"] = {"scale_bar_nm": schema["properties"].pop("scale_bar_nm"), **schema["properties"]}
    assert pl.read_parquet(tables.write_table(images, tmp_path / "images.parquet", schema)).columns[0] == "scale_bar_nm"
    with pytest.raises(tables.TableSchemaError, match="columns differ"):
        tables.write_table(images.select(images.columns[::-1]), tmp_path / "x.parquet", schema)
    schema["properties"]["scale_bar_nm"]["type"] = "number"  # an optional column must allow null
    with pytest.raises(ValueError, match=r"optional column\(s\) \['scale_bar_nm'\] must allow null"):
        tables.write_table(images, tmp_path / "x.parquet", schema)


def test_real_datasets_with_sidecar(shared_data, tmp_path):
    side = {"entries": [{"image": "pbse_fig2b/5-0011", "nm_per_px": 0.260417, "sample_id": "PbSe"}]}
    datasets = {"pbse_fig2b": {"path": str(shared_data / "tem" / "pbse_fig2b"), "images": ["*.tif"]},
                "au_insitu": {"path": str(shared_data / "tem" / "au_insitu"), "images": ["images/*.png"],
                              "uncalibrated": "keep"}}
    images, rejected = ingest(datasets, tmp_path / "out", side)
    assert rejected.height == 0
    pbse = images.filter(pl.col("image_id") == "pbse_fig2b/5-0011").row(0, named=True)
    assert (pbse["width"], pbse["height"], pbse["nm_per_px"], pbse["sample_id"]) == (1002, 667, 0.260417, "PbSe")
    assert pbse["calibration_source"] == "sidecar" and len(pbse["sha256"]) == 64
    # the in-situ frames (grey 9-29) are stretched to the full 8-bit range
    au = np.asarray(Image.open(images.filter(pl.col("dataset") == "au_insitu")["path"][0]))
    assert au.min() == 0 and au.max() == 255


def test_every_format_file_is_accounted_for(shared_data, tmp_path):
    spec = {"path": str(shared_data / "tem" / "formats"), "images": ["*"]}
    images, rejected = ingest({"formats": spec}, tmp_path / "out", min_size_px=1)
    n_files = len([p for p in (shared_data / "tem" / "formats").iterdir() if p.is_file()])
    assert images.height + rejected.height == n_files
    ids = set(images["image_id"])
    assert {"formats/128x128-TEM_search_1", "formats/olympus_SIS", "formats/fei_example_tem_stack"} <= ids
    # stems shared by two files keep both apart: test-1.dm3 / test-1.dm4 are uncalibrated, hence rejected
    reasons = dict(zip([p.rsplit("/", 1)[-1] for p in rejected["source_path"]], rejected["reason"]))
    assert "no pixel size" in reasons["test-1.dm3"] and "no pixel size" in reasons["test-1.dm4"]
    assert "no pixel size" in reasons["test_loading_image_saved_with_imageJ_no_scale.tif"]
    # the JEOL SightX test file is a dummy whose pixels all hold one value
    assert reasons["JEOL-SightX-TEM-mag-dummy.tif"].startswith("constant image")
    assert reasons["128x128-TEM_search.emi"].startswith("not an image")


def test_sidecar_errors_name_the_row(tmp_path):
    csv = tmp_path / "side.csv"
    csv.write_text("image,nm_per_px,sample_id\na.png,0.5,s\nb.png,abc,s\n")
    with pytest.raises(ValueError, match=r"side.csv row 3: nm_per_px 'abc' is not a number"):
        load_sidecar({"files": [str(csv)]})
    csv.write_text("name,nm\na.png,0.5\n")
    with pytest.raises(ValueError, match="missing column"):
        load_sidecar({"files": [str(csv)]})
    with pytest.raises(ValueError, match=r"tem.sidecar.entries\[0\]: nm_per_px must be a positive"):
        load_sidecar({"entries": [{"image": "x", "nm_per_px": -1}]})


def test_hidden_characters_in_file_names_and_sample_ids_are_refused(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    rng = np.random.default_rng(2)
    names = ["ok.png", "gnp.\u202eevil.png", "zero\u200bwidth.png", "bom\ufeff.png", "tab\tname.png"]
    for i, name in enumerate(names):
        Image.fromarray((rng.random((30 + i, 40)) * 255).astype(np.uint8)).save(root / name)
    images, rejected = ingest({"lab": {"path": str(root), "nm_per_px": 1.0, "sample_id": "=cmd|' /C calc'!A0"}},
                              tmp_path / "out", log=open(tmp_path / "log", "w"))
    assert sorted(images["image_id"]) == ["lab/ok", "lab/tab\tname"]  # a tab is whitespace, not hidden
    assert images.height + rejected.height == len(names)
    reasons = dict(zip(rejected["source_path"], rejected["reason"]))
    assert set(reasons) == {str(root / "gnp.\\u202eevil.png"), str(root / "zero\\u200bwidth.png"),
                            str(root / "bom\\ufeff.png")}
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE)" in reasons[str(root / "gnp.\\u202eevil.png")]
    assert "U+FEFF (ZERO WIDTH NO-BREAK SPACE)" in reasons[str(root / "bom\\ufeff.png")]
    assert all(ch.isprintable() for text in rejected["source_path"].to_list() + list(reasons.values()) for ch in text)
    with pytest.raises(ValueError, match=r"config tem.datasets.lab: sample_id 'S\\x001' holds U\+0000 \(NULL\)"):
        ingest({"lab": {"path": str(root), "sample_id": "S\x001"}}, tmp_path / "out2")
    side = tmp_path / "side.csv"
    side.write_text("image,nm_per_px,sample_id\nok.png,0.5,s\n\nok.png,0.5,s\u2067x\n")
    with pytest.raises(ValueError, match=r"side.csv row 4: sample_id 's\\u2067x' holds U\+2067"):
        load_sidecar({"files": [str(side)]})


def test_mirror_copies_and_checks_the_tree_checksum(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "set1" / "images").mkdir(parents=True)
    (mirror / "set1" / "images" / "a.png").write_bytes(b"abc")
    digest = tree_sha256(mirror / "set1")
    dest = mirror_dataset("set1", "set1", [str(tmp_path / "nowhere"), str(mirror)], tmp_path / "res" / "set1",
                          sha256=digest)
    assert (dest / "images" / "a.png").read_bytes() == b"abc"
    (mirror / "set1" / "images" / "b.png").write_bytes(b"new file")
    with pytest.raises(DatasetError, match="checksum mismatch"):
        mirror_dataset("set1", "set1", [str(mirror)], tmp_path / "res2" / "set1", sha256=digest)
    with pytest.raises(DatasetError, match=r"folder 'other' not found in any of download.mirrors.*origin: here"):
        mirror_dataset("x", "other", [str(mirror)], tmp_path / "res3" / "x", origin="here")


def _signal(data, scale, units):
    axes = [{"name": n, "size": s, "scale": scale, "offset": 0, "units": units, "navigate": False}
            for n, s in zip(("y", "x"), data.shape)]
    return {"data": data, "axes": axes, "metadata": {"General": {"title": "t"}, "Signal": {"signal_type": ""}},
            "original_metadata": {}}


def test_files_written_by_rosettasciio_and_pillow(tmp_path):
    import warnings

    from rsciio import emd, tiff

    root = tmp_path / "w"
    root.mkdir()
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiff.file_writer(str(root / "calibrated.tif"), _signal((rng.random((40, 50)) * 900).astype(np.uint16), 0.3, "nm"))
        emd.file_writer(str(root / "ncem.emd"), _signal((rng.random((30, 40)) * 900).astype(np.int32), 2.5, "Å"))
    rgb = (rng.random((32, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(root / "figure_rgb.png")
    Image.fromarray(rgb).save(root / "photo.jpg", quality=90)
    side = {"entries": [{"image": "figure_rgb.png", "nm_per_px": 1.2}, {"image": "w/photo", "nm_per_px": 3.0}]}
    images, rejected = ingest({"w": {"path": str(root)}}, tmp_path / "out", side)
    assert rejected.height == 0
    got = {r["image_id"]: r for r in images.iter_rows(named=True)}
    assert got["w/calibrated"]["nm_per_px"] == pytest.approx(0.3) and got["w/calibrated"]["calibration_source"] == "metadata"
    assert got["w/ncem"]["nm_per_px"] == pytest.approx(0.25) and got["w/ncem"]["source_format"] == "emd"
    assert got["w/figure_rgb"]["source_dtype"] == "RGB" and got["w/figure_rgb"]["nm_per_px"] == 1.2
    assert got["w/photo"]["source_format"] == "jpeg" and got["w/photo"]["nm_per_px"] == 3.0
    gray = np.asarray(Image.open(got["w/figure_rgb"]["path"]))
    assert gray.ndim == 2 and gray.shape == (32, 48)
