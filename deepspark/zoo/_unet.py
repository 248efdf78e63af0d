"""U-Net (Ronneberger et al. 2015) as a ``GraphConfig``: a contracting path, an expanding path, skip connections."""

from __future__ import annotations

from deepspark.config import (
    Adam,
    Conv2D,
    Deconv2D,
    GraphConfig,
    GraphVertex,
    InputType,
    LayerVertex,
    LossLayer,
    Merge,
    Subsampling2D,
    Updater,
)
from deepspark.errors import ConfigError


def unet(
    *,
    input_type: InputType | None = None,
    num_classes: int = 1,
    base_width: int = 64,
    depth: int = 4,
    updater: Updater | None = None,
    seed: int = 0,
) -> GraphConfig:
    """U-Net with "same" 3x3 convolutions, so the mask has the input's size (height and width divisible by 2**depth).

    Each level doubles the width (64 ... 1024 with the defaults); the expanding path up-samples with 2x2
    transposed convolutions and concatenates the matching contracting-path features. The output is one
    sigmoid per pixel and class, scored with binary cross-entropy: labels are (N, num_classes * H * W) masks
    in (class, row, column) order.
    """
    t = input_type or InputType.convolutional(128, 128, 3)
    if t.form not in ("convolutional", "convolutional_flat") or t.height % 2**depth or t.width % 2**depth:
        raise ConfigError(f"U-Net needs images with height and width divisible by {2**depth}, got {t.describe()}")
    vertices: list[GraphVertex] = []

    def conv(name: str, source: str, width: int) -> str:
        for i in (1, 2):
            layer = Conv2D(n_out=width, kernel=(3, 3), convolution_mode="same", activation="relu")
            vertices.append(LayerVertex(name=f"{name}_conv{i}", inputs=(source,), layer=layer))
            source = f"{name}_conv{i}"
        return source

    x, skips = "input", []
    for level in range(depth):
        x = conv(f"down{level}", x, base_width * 2**level)
        skips.append(x)
        vertices.append(LayerVertex(name=f"pool{level}", inputs=(x,), layer=Subsampling2D(kernel=(2, 2))))
        x = f"pool{level}"
    x = conv("bottom", x, base_width * 2**depth)
    for level in reversed(range(depth)):
        width = base_width * 2**level
        up = Deconv2D(n_out=width, kernel=(2, 2), stride=(2, 2))
        vertices.append(LayerVertex(name=f"up{level}", inputs=(x,), layer=up))
        vertices.append(Merge(name=f"cat{level}", inputs=(skips[level], f"up{level}")))
        x = conv(f"dec{level}", f"cat{level}", width)
    vertices.append(LayerVertex(name="logits", inputs=(x,), layer=Conv2D(n_out=num_classes, kernel=(1, 1))))
    vertices.append(LayerVertex(name="mask", inputs=("logits",), layer=LossLayer(activation="sigmoid", loss="xent")))
    return GraphConfig(
        inputs=("input",),
        input_types=(t,),
        vertices=tuple(vertices),
        outputs=("mask",),
        updater=updater or Adam(learning_rate=1e-4),
        seed=seed,
        weight_init="relu",
    )
