"""Image folders on Spark: ``binaryFile`` listing, Pillow decoding and resizing on the executors, labels from folders.

DataVec's ``ImageRecordReader`` + ``ParentPathLabelGenerator`` for DataFrames. The driver lists files
(a JVM job that never reads their bytes) to find the label names; executors decode each Arrow batch of
file contents with Pillow into channels-first float rows (``C*H*W`` values, ``InputType.convolutional_flat``).
A file that does not decode (corrupt, truncated, not an image) becomes a row with an error message
instead of failing the job, unless ``on_error="raise"``; `ImageFolder.report` counts them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from deepspark.config.input_types import InputType
from deepspark.errors import ConfigError, DataError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["ImageFolder", "ImageReport", "decode_image", "decode_images", "read_images"]

OnError = Literal["skip", "raise"]
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, EOFError)
_REPORTED_FAILURES = 20
_PARTITION_BYTES = 64 << 20  # encoded bytes per decode task: big enough to amortize a Python task
_PARTITION_FILES = 2000  # files per decode task at most (small images)


@dataclass(frozen=True, slots=True)
class _DecodePlan:
    """What the executors need to decode one column: size, channels, scale, error policy and column names."""

    height: int
    width: int
    channels: int
    scale: float
    on_error: str
    content_col: str
    output_col: str
    error_col: str
    path_col: str | None
    struct: bool = False  # Spark's image data source struct (raw BGR pixels) instead of encoded bytes


def _check_plan(height: object, width: object, channels: object, scale: object, on_error: object) -> None:
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"expected a positive int, got {value!r}", name)
    if channels not in _MODES:
        raise ConfigError(f"expected 1 (grayscale), 3 (RGB) or 4 (RGBA), got {channels!r}", "channels")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        raise ConfigError(f"expected a positive number (e.g. 1/255), got {scale!r}", "scale")
    if on_error not in ("skip", "raise"):
        raise ConfigError(f"expected 'skip' or 'raise', got {on_error!r}", "on_error")


def decode_image(data: bytes, height: int, width: int, channels: int = 1, scale: float = 1.0) -> np.ndarray:
    """Decode one encoded image (PNG, JPEG, ...) to ``channels*height*width`` float32 values, channels first.

    The image is converted to grayscale/RGB/RGBA and resized (bilinear) when its size differs; pixel
    values 0..255 are multiplied by ``scale``. Raises what Pillow raises for bytes that are not an image.

    Example:
        >>> decode_image(open("digit.png", "rb").read(), 28, 28).shape  # doctest: +SKIP
        (784,)
    """
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            img.draft(_MODES[channels], (width, height))  # let libjpeg downscale while decoding
        converted = img.convert(_MODES[channels])
    return _pixels(converted, height, width, channels, scale)


def _pixels(converted: Any, height: int, width: int, channels: int, scale: float) -> np.ndarray:
    """A Pillow image in the target mode -> resized, channels-first, scaled float32 values."""
    from PIL import Image

    if converted.size != (width, height):
        converted = converted.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(converted, dtype=np.float32)
    if channels > 1:
        pixels = pixels.transpose(2, 0, 1)  # HWC -> CHW, as torch convolutions expect
    out = np.ascontiguousarray(pixels).reshape(-1)
    if scale != 1.0:
        out *= np.float32(scale)
    return out


_IMAGE_FIELDS = ("origin", "height", "width", "nChannels", "mode", "data")


def _from_image_struct(value: dict[str, Any], height: int, width: int, channels: int, scale: float) -> np.ndarray:
    """One row of Spark's ``image`` data source (raw BGR/BGRA bytes, row-major) -> pixels like `decode_image`."""
    from PIL import Image

    h, w, c, data = value["height"], value["width"], value["nChannels"], value["data"]
    if h is None or w is None or h < 1 or w < 1 or not data or c not in (1, 3, 4) or len(data) != h * w * c:
        raise ValueError("not a valid image (the image data source could not decode it)")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(h, w, c)
    if c == 1:
        img = Image.fromarray(raw[:, :, 0], mode="L")
    else:
        order = [2, 1, 0] if c == 3 else [2, 1, 0, 3]  # BGR(A) -> RGB(A)
        img = Image.fromarray(np.ascontiguousarray(raw[:, :, order]), mode="RGB" if c == 3 else "RGBA")
    return _pixels(img.convert(_MODES[channels]), height, width, channels, scale)


def _decode_batches(plan: _DecodePlan, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: every column but the content, plus the decoded pixels (null on failure) and the error."""
    width = plan.channels * plan.height * plan.width
    for batch in batches:
        n = batch.num_rows
        content = batch.column(plan.content_col)
        paths = batch.column(plan.path_col).to_pylist() if plan.path_col is not None else [None] * n
        pixels = np.zeros((n, width), dtype=np.float32)
        errors: list[str | None] = [None] * n
        for i in range(n):  # one Pillow call per image: decoding is per file by nature
            raw = content[i].as_py()
            try:
                if raw is None:
                    raise ValueError("the file has no content (null)")
                if plan.struct:
                    paths[i] = paths[i] if paths[i] is not None else raw.get("origin")
                    pixels[i] = _from_image_struct(raw, plan.height, plan.width, plan.channels, plan.scale)
                else:
                    pixels[i] = decode_image(raw, plan.height, plan.width, plan.channels, plan.scale)
            except _DECODE_ERRORS as e:
                where = f"file {paths[i]}" if paths[i] is not None else f"column '{plan.content_col}'"
                message = f"{type(e).__name__}: {e}"
                if plan.on_error == "raise":
                    raise DataError(
                        f"{where} is not a decodable image ({message}); remove it, or pass on_error='skip' to "
                        "count and skip such files"
                    ) from None
                errors[i] = message
        failed = np.array([e is not None for e in errors])
        offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
        features = pa.ListArray.from_arrays(offsets, pa.array(pixels.reshape(-1)), mask=pa.array(failed))
        keep = [name for name in batch.schema.names if name != plan.content_col]
        columns = [batch.column(name) for name in keep]
        yield pa.RecordBatch.from_arrays(
            [*columns, features, pa.array(errors, type=pa.string())], names=[*keep, plan.output_col, plan.error_col]
        )


def decode_images(
    df: DataFrame,
    content_col: str = "content",
    *,
    height: int,
    width: int,
    channels: int = 1,
    scale: float = 1.0,
    on_error: OnError = "skip",
    output_col: str = "features",
    error_col: str = "image_error",
    path_col: str | None = "path",
) -> DataFrame:
    """Replace a binary column of encoded images by decoded ``array<float>`` pixels, on the executors.

    Lazy: nothing runs until an action. Every other column is kept. A row whose bytes do not decode
    gets a null ``output_col`` and its reason in ``error_col`` (null for good rows); with
    ``on_error="raise"`` the job fails with a `DataError` naming the file instead.

    Args:
        df: Any DataFrame with a binary column, e.g. ``spark.read.format("binaryFile").load(...)``, or
            with the ``image`` struct column of ``spark.read.format("image").load(...)``.
        content_col: The binary column holding encoded images (PNG, JPEG, BMP, GIF, TIFF...), or an
            image-struct column (raw BGR pixels, converted to RGB here).
        height: Output height in pixels (images of another size are resized, bilinear).
        width: Output width in pixels.
        channels: 1 (grayscale), 3 (RGB) or 4 (RGBA); values are laid out channels first.
        scale: Multiplies the 0..255 pixel values (1/255 gives 0..1).
        on_error: ``"skip"`` (mark the row) or ``"raise"``.
        output_col: Name of the pixels column.
        error_col: Name of the error column.
        path_col: A column naming each file in error messages, or None.

    Returns:
        ``df`` without ``content_col``, plus ``output_col`` (``array<float>``) and ``error_col`` (string).

    Example:
        >>> files = spark.read.format("binaryFile").load("/data/photos")  # doctest: +SKIP
        >>> decoded = decode_images(files, height=64, width=64, channels=3, scale=1 / 255)  # doctest: +SKIP
    """
    from pyspark.sql.types import ArrayType, BinaryType, FloatType, StringType, StructField, StructType

    _check_plan(height, width, channels, scale, on_error)
    fields = {f.name: f for f in df.schema.fields}
    if content_col not in fields:
        raise DataError(f"image column '{content_col}' not found; available: {list(fields)}")
    dtype = fields[content_col].dataType
    struct = isinstance(dtype, StructType) and sorted(dtype.names) == sorted(_IMAGE_FIELDS)
    if not isinstance(dtype, BinaryType) and not struct:
        raise DataError(
            f"image column '{content_col}' has type {dtype.simpleString()}; expected binary (encoded image files, "
            "e.g. spark.read.format('binaryFile')) or the struct of spark.read.format('image')"
        )
    for name in (output_col, error_col):
        if name in fields and name != content_col:
            raise DataError(f"output column '{name}' already exists in the DataFrame ({list(fields)}); choose another")
    if path_col is not None and path_col not in fields:
        path_col = None
    plan = _DecodePlan(
        height, width, channels, float(scale), on_error, content_col, output_col, error_col, path_col, struct
    )
    schema = StructType(
        [f for f in df.schema.fields if f.name != content_col]
        + [StructField(output_col, ArrayType(FloatType(), False)), StructField(error_col, StringType())]
    )
    return df.mapInArrow(partial(_decode_batches, plan), schema)


@dataclass(frozen=True, slots=True)
class ImageReport:
    """What one pass over an image folder found: files, how many failed to decode, and the first failures."""

    files: int
    failed: int
    failures: tuple[tuple[str, str], ...]

    @property
    def decoded(self) -> int:
        """Files that decoded into examples."""
        return self.files - self.failed

    def __str__(self) -> str:
        lines = [f"{self.files} files, {self.decoded} decoded, {self.failed} failed"]
        lines += [f"  {path}: {error}" for path, error in self.failures]
        return "\n".join(lines)


@dataclass(frozen=True)
class ImageFolder:
    """An image folder read with `read_images`: the decoded DataFrame, its label names and the image shape.

    Attributes:
        frame: Every file: ``path``, ``label`` (int class index, absent when unlabeled), ``features``
            (``array<float>``, null when the file failed) and ``image_error`` (null when it decoded).
        labels: Class names in class-index order (the parent directory names); save them with the model.
        counts: Files per label name, from the listing (before decoding).
        height: Image height.
        width: Image width.
        channels: Image channels.
    """

    frame: DataFrame
    labels: tuple[str, ...]
    counts: dict[str, int]
    height: int
    width: int
    channels: int

    @property
    def data(self) -> DataFrame:
        """The training data: files that decoded, as ``path``, ``label``, ``features`` (lazy)."""
        from pyspark.sql import functions as F

        return self.frame.filter(F.col("image_error").isNull()).drop("image_error")

    @property
    def input_type(self) -> InputType:
        """The network input type these features fit: ``InputType.convolutional_flat(height, width, channels)``."""
        return InputType.convolutional_flat(self.height, self.width, self.channels)

    def failures(self) -> DataFrame:
        """Files that did not decode: ``path`` and ``image_error`` (lazy)."""
        from pyspark.sql import functions as F

        return self.frame.filter(F.col("image_error").isNotNull()).select("path", "image_error")

    def report(self) -> ImageReport:
        """Decode everything once and count: files, failures and the first 20 failing paths with their reasons.

        Persist ``frame`` first if you will also train on it, so the images are decoded once.
        """
        from pyspark.sql import functions as F

        bad = self.frame.select("path", "image_error").filter(F.col("image_error").isNotNull()).persist()
        try:
            failed = bad.count()
            first = bad.orderBy("path").limit(_REPORTED_FAILURES).collect()
        finally:
            bad.unpersist()
        total = sum(self.counts.values())
        return ImageReport(files=total, failed=failed, failures=tuple((r["path"], r["image_error"]) for r in first))


def _parent(path: Column) -> Column:
    from pyspark.sql import functions as F

    return F.element_at(F.split(path, "/"), -2)


def read_images(
    spark: SparkSession,
    path: str,
    *,
    height: int,
    width: int,
    channels: int = 1,
    scale: float = 1.0,
    labels: Sequence[str] | Literal["infer"] | None = "infer",
    glob: str | None = None,
    on_error: OnError = "skip",
) -> ImageFolder:
    """Read a directory tree of images as training data: one row per file, the label from its parent folder.

    Files are listed with ``spark.read.format("binaryFile")`` (recursively; any path or URI Spark can
    read: local, HDFS, S3...). The driver runs one listing job (the file bytes are not read) to find
    the labels and to refuse an empty folder; decoding happens lazily on the executors with Pillow.
    Files that do not decode are skipped and counted (`ImageFolder.report`), unless ``on_error="raise"``.

    Args:
        spark: The session.
        path: A directory (searched recursively), or a path with wildcards.
        height: Image height after resizing.
        width: Image width after resizing.
        channels: 1 (grayscale), 3 (RGB) or 4 (RGBA).
        scale: Multiplies pixel values 0..255 (1/255 gives 0..1; or fit an ``ImageScaler``).
        labels: ``"infer"``: the sorted parent directory names; a list of names (e.g. the one saved with
            a model) fixes the class indices, and a folder not in it raises `DataError`; None: unlabeled.
        glob: Only files whose name matches, e.g. ``"*.png"`` (Spark's ``pathGlobFilter``). By default
            every file is read, and files that are not images are counted as failures.
        on_error: ``"skip"`` or ``"raise"``.

    Returns:
        An `ImageFolder`; its ``data`` DataFrame (``path``, ``label``, ``features``) goes straight into
        ``SparkNetwork.fit(folder.data, "features", "label")`` with ``input_type=folder.input_type``.

    Raises:
        DataError: the path does not exist or holds no files, or a folder name is not among ``labels``.

    Example:
        >>> folder = read_images(spark, "/data/mnist_png/train", height=28, width=28, scale=1 / 255)  # doctest: +SKIP
        >>> folder.labels[:3], folder.input_type.describe()  # doctest: +SKIP
        (('0', '1', '2'), 'conv_flat(28x28x1)')
    """
    from pyspark.sql import functions as F

    _check_plan(height, width, channels, scale, on_error)
    if not isinstance(path, str) or not path:
        raise ConfigError(f"expected a path, got {path!r}", "path")
    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
    if glob is not None:
        reader = reader.option("pathGlobFilter", glob)
    try:
        files = reader.load(path)
        listing = (
            files.groupBy(_parent(F.col("path")).alias("name"))
            .agg(F.count(F.lit(1)).alias("count"), F.sum("length").alias("bytes"))
            .collect()
        )
    except Exception as e:
        if "PATH_NOT_FOUND" in str(e) or "does not exist" in str(e):
            raise DataError(f"image path {path!r} does not exist") from None
        raise
    counts = {str(r["name"]): int(r["count"]) for r in listing}
    if not counts:
        filtered = f" matching {glob!r}" if glob is not None else ""
        raise DataError(f"no files{filtered} under {path!r}: the image folder is empty; check the path and glob")
    # binaryFile counts every file as spark.sql.files.openCostInBytes (4 MB): a folder of small images
    # becomes hundreds of tiny partitions, each a Python task. Merge them (no shuffle) to a sensible size.
    total_files, total_bytes = sum(counts.values()), sum(int(r["bytes"] or 0) for r in listing)
    slots = int(spark.sparkContext.defaultParallelism)
    tasks = max(slots, -(-total_bytes // _PARTITION_BYTES), -(-total_files // _PARTITION_FILES))
    frame = files.select("path", "content")
    if tasks < frame.rdd.getNumPartitions():
        frame = frame.coalesce(tasks)
    names: tuple[str, ...] = ()
    if labels is not None:
        names = tuple(sorted(counts)) if labels == "infer" else _label_list(labels)
        unknown = sorted(set(counts) - set(names))
        if unknown:
            raise DataError(
                f"label column 'label': folder name(s) {unknown[:10]} under {path!r} are not among the {len(names)} "
                f"known labels {list(names)[:10]}; move those files, or pass labels='infer' to re-derive the list "
                "(class indices then change)"
            )
        index = F.array_position(F.array(*[F.lit(n) for n in names]), _parent(F.col("path"))) - 1
        frame = frame.select("path", index.cast("int").alias("label"), "content")
    decoded = decode_images(
        frame, "content", height=height, width=width, channels=channels, scale=scale, on_error=on_error
    )
    return ImageFolder(decoded, names, counts, height, width, channels)


def _label_list(labels: Any) -> tuple[str, ...]:
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not all(isinstance(n, str) for n in labels):
        raise ConfigError(f"expected 'infer', None or a list of label names, got {labels!r}", "labels")
    if not labels or len(set(labels)) != len(labels):
        raise ConfigError(f"expected distinct label names, got {list(labels)}", "labels")
    return tuple(labels)
