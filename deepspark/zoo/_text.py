"""Text classifiers over token-id sequences: TextCNN (Kim 2014) and an LSTM classifier."""

from __future__ import annotations

from deepspark.config import (
    LSTM,
    Adam,
    Bidirectional,
    Conv1D,
    EmbeddingSequence,
    GlobalPooling,
    GraphConfig,
    GraphVertex,
    InputType,
    LastTimeStep,
    Layer,
    LayerVertex,
    Merge,
    NetworkConfig,
    Output,
    Updater,
)


def text_cnn(
    *,
    input_type: InputType | None = None,
    num_classes: int = 2,
    vocab_size: int = 20000,
    embedding_size: int = 128,
    kernels: tuple[int, ...] = (3, 4, 5),
    filters: int = 100,
    updater: Updater | None = None,
    seed: int = 0,
) -> GraphConfig:
    """Kim's CNN for sentence classification: embeddings, parallel 1-D convolutions of several widths, max-over-time
    pooling, concatenation, dropout 0.5, softmax. Input: ``feed_forward(T)`` rows of token ids (0 pads the end)."""
    t = input_type or InputType.feed_forward(100)
    emb = EmbeddingSequence(vocab_size=vocab_size, n_out=embedding_size, mask_zero=True)
    vertices: list[GraphVertex] = [LayerVertex(name="embedding", inputs=("tokens",), layer=emb)]
    pooled = []
    for k in kernels:
        conv = Conv1D(n_out=filters, kernel=k, activation="relu")
        vertices.append(LayerVertex(name=f"conv{k}", inputs=("embedding",), layer=conv))
        vertices.append(LayerVertex(name=f"pool{k}", inputs=(f"conv{k}",), layer=GlobalPooling(pooling="max")))
        pooled.append(f"pool{k}")
    head = Output(n_out=num_classes, activation="softmax", loss="mcxent", dropout=0.5)
    if len(pooled) > 1:
        vertices.append(Merge(name="features", inputs=tuple(pooled)))
        source = "features"
    else:
        source = pooled[0]
    vertices.append(LayerVertex(name="output", inputs=(source,), layer=head))
    return GraphConfig(
        inputs=("tokens",),
        input_types=(t,),
        vertices=tuple(vertices),
        outputs=("output",),
        updater=updater or Adam(learning_rate=1e-3),
        seed=seed,
    )


def lstm_classifier(
    *,
    input_type: InputType | None = None,
    num_classes: int = 2,
    vocab_size: int = 20000,
    embedding_size: int = 128,
    hidden: int = 128,
    bidirectional: bool = False,
    updater: Updater | None = None,
    seed: int = 0,
) -> NetworkConfig:
    """Embeddings, an LSTM (optionally bidirectional), the last valid step, softmax. Input as ``text_cnn``'s."""
    lstm: Layer = LSTM(n_out=hidden)
    if bidirectional:
        layers: list[Layer] = [Bidirectional(layer=lstm, return_sequences=False)]
    else:
        layers = [lstm, LastTimeStep()]
    emb = EmbeddingSequence(vocab_size=vocab_size, n_out=embedding_size, mask_zero=True)
    return NetworkConfig(
        layers=(emb, *layers, Output(n_out=num_classes, activation="softmax", loss="mcxent")),
        input_type=input_type or InputType.feed_forward(100),
        updater=updater or Adam(learning_rate=1e-3),
        seed=seed,
    )
