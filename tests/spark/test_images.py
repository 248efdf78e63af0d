"""Image folders on local[2]: binaryFile listing, executor-side decoding, labels from folders, corrupt files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyspark.sql import SparkSession

from deepspark.data.dataframe import dataframe_to_arrays, executor_error
from deepspark.data.images import decode_images, read_images
from deepspark.errors import DataError


def _png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path, format="PNG")


def _folder(root: Path, seed: int) -> dict[str, np.ndarray]:
    """Two classes of 4x4 grayscale PNGs (3 cats, 2 dogs), plus a truncated PNG and a text file among the dogs."""
    rng = np.random.default_rng(seed)
    images = {}
    for label, count in (("cat", 3), ("dog", 2)):
        for i in range(count):
            pixels = rng.integers(0, 256, (4, 4))
            _png(root / label / f"{i}.png", pixels)
            images[f"{label}/{i}.png"] = pixels
    good = (root / "dog" / "0.png").read_bytes()
    (root / "dog" / "broken.png").write_bytes(good[: len(good) // 2])
    (root / "dog" / "notes.txt").write_text("not an image")
    return images


def test_read_images_labels_from_folders_pixels_round_trip_and_corrupt_files_are_counted(
    spark: SparkSession, tmp_path: Path, seed: int
) -> None:
    images = _folder(tmp_path / "pets", seed)
    folder = read_images(spark, str(tmp_path / "pets"), height=4, width=4, scale=1 / 255)
    assert folder.labels == ("cat", "dog") and folder.counts == {"cat": 3, "dog": 4}
    assert folder.input_type.describe() == "conv_flat(4x4x1)"
    rows = folder.data.orderBy("path").collect()
    assert [r["path"].split("pets/")[1] for r in rows] == sorted(images)
    for r in rows:
        name = r["path"].split("pets/")[1]
        assert r["label"] == ("cat", "dog").index(name.split("/")[0])
        np.testing.assert_allclose(r["features"], images[name].reshape(-1) / 255, rtol=1e-6)
    x, y = dataframe_to_arrays(folder.data.orderBy("path"), "features", "label")
    assert x.shape == (5, 16) and y is not None and y.tolist() == [0, 0, 0, 1, 1]
    report = folder.report()
    assert (report.files, report.decoded, report.failed) == (7, 5, 2)
    assert sorted(p.rsplit("/", 1)[1] for p, _ in report.failures) == ["broken.png", "notes.txt"]
    assert "2 failed" in str(report)


def test_read_images_rgb_resized_channels_first_and_given_label_list(spark: SparkSession, tmp_path: Path) -> None:
    pixels = np.zeros((6, 8, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 10, 20, 30  # flat colours survive resizing exactly
    for label in ("b", "a"):
        _png(tmp_path / "rgb" / label / "x.png", pixels)
    folder = read_images(
        spark, str(tmp_path / "rgb"), height=3, width=4, channels=3, labels=["b", "a", "c"], glob="*.png"
    )
    assert folder.labels == ("b", "a", "c")
    rows = {r["path"].split("rgb/")[1]: r for r in folder.data.collect()}
    assert rows["b/x.png"]["label"] == 0 and rows["a/x.png"]["label"] == 1
    features = np.array(rows["a/x.png"]["features"]).reshape(3, 3, 4)
    np.testing.assert_array_equal(features[:, 0, 0], [10, 20, 30])
    assert np.all(features == features[:, :1, :1])


def test_read_images_bad_input_raises_data_error(spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no files under .*empty.*: the image folder is empty"):
        read_images(spark, str(tmp_path / "empty"), height=4, width=4)
    with pytest.raises(DataError, match=r"image path .*missing.* does not exist"):
        read_images(spark, str(tmp_path / "missing"), height=4, width=4)
    _folder(tmp_path / "pets", 0)
    with pytest.raises(DataError, match=r"label column 'label': folder name\(s\) \['dog'\] .* not among the 1 known"):
        read_images(spark, str(tmp_path / "pets"), height=4, width=4, labels=["cat"])
    strict = read_images(spark, str(tmp_path / "pets"), height=4, width=4, on_error="raise")
    with pytest.raises(Exception) as info:
        strict.data.count()
    error = executor_error(info.value)
    assert isinstance(error, DataError)
    assert "dog/broken.png is not a decodable image" in str(error) or "notes.txt is not a decodable image" in str(error)


def test_decode_images_reads_any_binary_column(spark: SparkSession) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((2, 2), 7, np.uint8)).save(buf, format="PNG")
    df = spark.createDataFrame([(1, bytearray(buf.getvalue())), (2, bytearray(b"junk"))], "id long, img binary")
    rows = decode_images(df, "img", height=2, width=2, path_col=None).orderBy("id").collect()
    assert rows[0]["features"] == [7.0] * 4 and rows[0]["image_error"] is None
    assert rows[1]["features"] is None and "UnidentifiedImageError" in rows[1]["image_error"]
    with pytest.raises(DataError, match=r"image column 'id' has type bigint; expected binary"):
        decode_images(df, "id", height=2, width=2)


def test_decode_images_reads_spark_image_source_structs_as_rgb(spark: SparkSession, tmp_path: Path) -> None:
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 10, 20, 30
    _png(tmp_path / "img" / "a.png", pixels)
    (tmp_path / "img" / "b.png").write_bytes(b"broken")
    from pyspark.sql import functions as F

    df = spark.read.format("image").option("dropInvalid", "false").load(str(tmp_path / "img"))
    df = df.select(F.col("image.origin").alias("path"), "image")
    decoded = decode_images(df, "image", height=2, width=3, channels=3).collect()
    rows = {r["path"].rsplit("/", 1)[1]: r for r in decoded}
    np.testing.assert_array_equal(rows["a.png"]["features"], [10] * 6 + [20] * 6 + [30] * 6)  # BGR -> RGB, CHW
    assert rows["b.png"]["features"] is None and "not a valid image" in rows["b.png"]["image_error"]
