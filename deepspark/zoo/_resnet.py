"""ResNet-50 (He et al. 2015) as a ``GraphConfig``: bottleneck blocks with identity and projection shortcuts."""

from __future__ import annotations

from deepspark.config import (
    Activation,
    BatchNorm,
    Conv2D,
    ElementWise,
    GlobalPooling,
    GraphConfig,
    GraphVertex,
    InputType,
    Layer,
    LayerVertex,
    Nesterovs,
    Output,
    Subsampling2D,
    Updater,
)


class _Builder:
    """Appends vertices one after another; ``add`` returns the new vertex's name."""

    def __init__(self) -> None:
        self.vertices: list[GraphVertex] = []

    def add(self, name: str, source: str, layer: Layer) -> str:
        self.vertices.append(LayerVertex(name=name, inputs=(source,), layer=layer))
        return name

    def conv_bn(self, name: str, source: str, width: int, kernel: int, stride: int = 1, relu: bool = True) -> str:
        pad = kernel // 2
        conv = Conv2D(
            n_out=width, kernel=(kernel, kernel), stride=(stride, stride), padding=(pad, pad), has_bias=False
        )
        x = self.add(f"{name}_conv", source, conv)
        x = self.add(f"{name}_bn", x, BatchNorm(decay=0.9, eps=1e-5))
        return self.add(f"{name}_relu", x, Activation(activation="relu")) if relu else x

    def bottleneck(self, name: str, source: str, width: int, stride: int, project: bool) -> str:
        """1x1 reduce, 3x3 (carrying the stride, as torchvision's v1.5), 1x1 expand x4, plus the shortcut."""
        x = self.conv_bn(f"{name}_a", source, width, 1)
        x = self.conv_bn(f"{name}_b", x, width, 3, stride)
        x = self.conv_bn(f"{name}_c", x, width * 4, 1, relu=False)
        shortcut = self.conv_bn(f"{name}_proj", source, width * 4, 1, stride, relu=False) if project else source
        self.vertices.append(ElementWise(name=f"{name}_add", inputs=(x, shortcut), op="add"))
        return self.add(f"{name}_out", f"{name}_add", Activation(activation="relu"))


def resnet50(
    *,
    input_type: InputType | None = None,
    num_classes: int = 1000,
    updater: Updater | None = None,
    seed: int = 0,
) -> GraphConfig:
    """ResNet-50: 25,557,032 trainable parameters at 224x224x3 with 1000 classes (bias-free convolutions).

    Stages of 3, 4, 6 and 3 bottleneck blocks (widths 64-512, expansion 4); a projection shortcut starts each.

    Example:
        >>> resnet50().outputs
        ('output',)
    """
    b = _Builder()
    x = b.conv_bn("stem", "input", 64, 7, 2)
    x = b.add("stem_pool", x, Subsampling2D(kernel=(3, 3), stride=(2, 2), padding=(1, 1)))
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=2):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 2 else 1
            x = b.bottleneck(f"res{stage}{chr(ord('a') + block)}", x, width, stride, project=block == 0)
    x = b.add("avg_pool", x, GlobalPooling(pooling="avg"))
    b.add("output", x, Output(n_out=num_classes, activation="softmax", loss="mcxent"))
    return GraphConfig(
        inputs=("input",),
        input_types=(input_type or InputType.convolutional(224, 224, 3),),
        vertices=tuple(b.vertices),
        outputs=("output",),
        updater=updater or Nesterovs(learning_rate=0.1, momentum=0.9),
        seed=seed,
        weight_init="relu",
    )
