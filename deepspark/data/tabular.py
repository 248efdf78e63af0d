"""CSV and tabular data on Spark: a stratified train/test split and a feature pipeline of Spark ML's own stages.

DataVec's transform process, the Spark way: Spark already reads CSV (``spark.read.csv``), indexes
strings (``StringIndexer``), one-hot encodes (``OneHotEncoder``), assembles vectors (``VectorAssembler``)
and splits (``randomSplit``). These helpers only wire those stages together with the defaults a neural
network needs; they never re-implement them. Recipes: ``docs/data.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from deepspark.errors import ConfigError, DataError

if TYPE_CHECKING:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.sql import DataFrame

__all__ = ["feature_pipeline", "label_names", "train_test_split"]

_RANK, _CLASS_ROWS, _DRAW = "_deepspark_rank", "_deepspark_class_rows", "_deepspark_draw"


def train_test_split(
    df: DataFrame, test_fraction: float = 0.2, seed: int = 0, stratify_col: str | None = None
) -> tuple[DataFrame, DataFrame]:
    """Split a DataFrame into ``(train, test)``; with ``stratify_col`` every class keeps its share in both parts.

    Without stratification this is Spark's ``randomSplit`` (each row lands in test with probability
    ``test_fraction``). With ``stratify_col``, rows of each class are ordered by a seeded random draw
    and the first ``round(n_class * test_fraction)`` go to test: exact per-class proportions, so a
    rare class is never missing from evaluation by chance. Both parts are lazy and recompute the draw:
    ``persist()`` a DataFrame that is not deterministic (an unordered source, ``rand()``) first.

    Args:
        df: The data.
        test_fraction: Share of rows (of each class) in the test part, strictly between 0 and 1.
        seed: Seed of the random draw.
        stratify_col: The class column to stratify on (any type but null), or None.

    Returns:
        ``(train, test)`` with ``df``'s columns.

    Raises:
        DataError: ``stratify_col`` is missing or holds nulls.

    Example:
        >>> train, test = train_test_split(df, 0.2, seed=1, stratify_col="label")  # doctest: +SKIP
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise ConfigError(f"expected a number strictly between 0 and 1, got {test_fraction!r}", "test_fraction")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"expected an int, got {seed!r}", "seed")
    if stratify_col is None:
        train, test = df.randomSplit([1.0 - test_fraction, float(test_fraction)], seed=seed)
        return train, test
    if stratify_col not in df.columns:
        raise DataError(f"stratify column '{stratify_col}' not found; available: {df.columns}")
    nulls = df.filter(F.col(stratify_col).isNull()).limit(1).count()
    if nulls:
        raise DataError(
            f"stratify column '{stratify_col}' has null values; drop or fill them first "
            f"(df.dropna(subset=['{stratify_col}']))"
        )
    by_class = Window.partitionBy(stratify_col)
    ranked = (
        df.withColumn(_DRAW, F.rand(seed))
        .withColumn(_RANK, F.row_number().over(by_class.orderBy(_DRAW)))
        .withColumn(_CLASS_ROWS, F.count(F.lit(1)).over(by_class))
    )
    in_test = F.col(_RANK) <= F.round(F.col(_CLASS_ROWS) * float(test_fraction))
    helpers = [_DRAW, _RANK, _CLASS_ROWS]
    return ranked.filter(~in_test).drop(*helpers), ranked.filter(in_test).drop(*helpers)


def feature_pipeline(
    numeric_cols: Sequence[str] = (),
    categorical_cols: Sequence[str] = (),
    label_col: str | None = None,
    *,
    features_col: str = "features",
    indexed_label_col: str = "label_index",
) -> Pipeline:
    """Spark ML stages that turn raw tabular columns into a features vector and a class-index label.

    ``StringIndexer`` (unseen categories at transform time go to an extra index: ``handleInvalid="keep"``)
    -> ``OneHotEncoder`` for the categorical columns, ``VectorAssembler`` of the one-hot vectors and the
    numeric columns, and a ``StringIndexer`` for a string label (alphabetical, so class indices do not
    depend on frequencies in one sample; an unknown label at transform time raises). Fit it on the
    training part only, then transform both parts; the features vector is ready for ``SparkNetwork``
    (``InputType.feed_forward(n)`` with n the vector size).

    Args:
        numeric_cols: Numeric columns used as they are (scale them with a normalizer).
        categorical_cols: String or integer category columns, one-hot encoded.
        label_col: A label column to index (string classes), or None to leave labels alone.
        features_col: Name of the assembled vector column.
        indexed_label_col: Name of the indexed label column.

    Returns:
        An unfitted ``pyspark.ml.Pipeline``.

    Example:
        >>> pipeline = feature_pipeline(["age", "fare"], ["sex", "class"], "survived")  # doctest: +SKIP
        >>> model = pipeline.fit(train)  # doctest: +SKIP
        >>> SparkNetwork(spark, conf).fit(model.transform(train), "features", "label_index")  # doctest: +SKIP
    """
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler

    numeric, categorical = list(numeric_cols), list(categorical_cols)
    if not numeric and not categorical:
        raise ConfigError("expected at least one numeric or categorical column", "numeric_cols")
    names = [*numeric, *categorical, *([label_col] if label_col else [])]
    if len(set(names)) != len(names):
        raise ConfigError(f"a column appears twice: {names}", "categorical_cols")
    stages: list[object] = []
    assembled = list(numeric)
    if categorical:
        indexed = [f"{c}_index" for c in categorical]
        onehot = [f"{c}_onehot" for c in categorical]
        stages.append(StringIndexer(inputCols=categorical, outputCols=indexed, handleInvalid="keep"))
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=onehot, dropLast=False))
        assembled = [*onehot, *numeric]
    stages.append(VectorAssembler(inputCols=assembled, outputCol=features_col))
    if label_col is not None:
        stages.append(
            StringIndexer(
                inputCol=label_col, outputCol=indexed_label_col, stringOrderType="alphabetAsc", handleInvalid="error"
            )
        )
    return Pipeline(stages=stages)  # type: ignore[arg-type]


def label_names(model: PipelineModel, indexed_label_col: str = "label_index") -> tuple[str, ...]:
    """The class names of a fitted `feature_pipeline`'s label indexer, in class-index order (for ``Network.labels``).

    Example:
        >>> spark_net.network.labels = label_names(model)  # doctest: +SKIP
    """
    from pyspark.ml.feature import StringIndexerModel

    for stage in model.stages:
        if isinstance(stage, StringIndexerModel) and stage.getOutputCol() == indexed_label_col:
            return tuple(stage.labelsArray[0])
    raise DataError(
        f"the pipeline has no StringIndexer writing '{indexed_label_col}'; pass label_col to feature_pipeline"
    )
