"""Sequential image classifiers: LeNet-5, a small CNN, AlexNet and VGG16, as ``NetworkConfig`` builders."""

from __future__ import annotations

from deepspark.config import (
    Adam,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    GlobalPooling,
    InputType,
    Layer,
    Nesterovs,
    NetworkConfig,
    Output,
    Subsampling2D,
    Updater,
)


def _classifier(
    layers: list[Layer], input_type: InputType, num_classes: int, updater: Updater | None, seed: int, default: Updater
) -> NetworkConfig:
    return NetworkConfig(
        layers=(*layers, Output(n_out=num_classes, activation="softmax", loss="mcxent")),
        input_type=input_type,
        updater=updater or default,
        seed=seed,
        weight_init="relu",
    )


def lenet(
    *,
    input_type: InputType | None = None,
    num_classes: int = 10,
    updater: Updater | None = None,
    seed: int = 0,
) -> NetworkConfig:
    """LeNet-5 as in Caffe and DL4J's zoo: conv 20@5x5, max-pool, conv 50@5x5, max-pool, dense 500, softmax.

    431,080 parameters on 28x28x1 with 10 classes.

    Example:
        >>> lenet().input_type.describe()
        'conv_flat(28x28x1)'
    """
    layers: list[Layer] = [
        Conv2D(n_out=20, kernel=(5, 5), activation="identity"),
        Subsampling2D(kernel=(2, 2), stride=(2, 2)),
        Conv2D(n_out=50, kernel=(5, 5), activation="identity"),
        Subsampling2D(kernel=(2, 2), stride=(2, 2)),
        Dense(n_out=500, activation="relu"),
    ]
    t = input_type or InputType.convolutional_flat(28, 28, 1)
    return _classifier(layers, t, num_classes, updater, seed, Adam(learning_rate=1e-3))


def simple_cnn(
    *,
    input_type: InputType | None = None,
    num_classes: int = 10,
    updater: Updater | None = None,
    seed: int = 0,
) -> NetworkConfig:
    """A small VGG-style CNN (DL4J's SimpleCNN): three conv-conv-pool blocks with batch norm, global average pooling.

    Any input size works (global pooling); defaults to 48x48x3.
    """
    layers: list[Layer] = []
    for width in (32, 64, 128):
        layers += [
            Conv2D(n_out=width, kernel=(3, 3), convolution_mode="same", activation="identity", has_bias=False),
            BatchNorm(),
            Conv2D(n_out=width, kernel=(3, 3), convolution_mode="same", activation="relu"),
            Subsampling2D(kernel=(2, 2), stride=(2, 2)),
            Dropout(rate=0.2),
        ]
    layers.append(GlobalPooling(pooling="avg"))
    t = input_type or InputType.convolutional(48, 48, 3)
    return _classifier(layers, t, num_classes, updater, seed, Adam(learning_rate=1e-3))


def alexnet(
    *,
    input_type: InputType | None = None,
    num_classes: int = 1000,
    updater: Updater | None = None,
    seed: int = 0,
) -> NetworkConfig:
    """AlexNet (Krizhevsky et al. 2012, single-tower form as in torchvision): 61,100,840 parameters at 224x224x3."""
    pool = Subsampling2D(kernel=(3, 3), stride=(2, 2))
    layers: list[Layer] = [
        Conv2D(n_out=64, kernel=(11, 11), stride=(4, 4), padding=(2, 2), activation="relu"),
        pool,
        Conv2D(n_out=192, kernel=(5, 5), padding=(2, 2), activation="relu"),
        pool,
        Conv2D(n_out=384, kernel=(3, 3), padding=(1, 1), activation="relu"),
        Conv2D(n_out=256, kernel=(3, 3), padding=(1, 1), activation="relu"),
        Conv2D(n_out=256, kernel=(3, 3), padding=(1, 1), activation="relu"),
        pool,
        Dense(n_out=4096, activation="relu", dropout=0.5),
        Dense(n_out=4096, activation="relu", dropout=0.5),
    ]
    t = input_type or InputType.convolutional(224, 224, 3)
    return _classifier(layers, t, num_classes, updater, seed, Nesterovs(learning_rate=1e-2, momentum=0.9))


def vgg16(
    *,
    input_type: InputType | None = None,
    num_classes: int = 1000,
    updater: Updater | None = None,
    seed: int = 0,
) -> NetworkConfig:
    """VGG16 (Simonyan & Zisserman 2014, configuration D): 138,357,544 parameters at 224x224x3, 1000 classes."""
    layers: list[Layer] = []
    for width, repeats in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        layers += [
            Conv2D(n_out=width, kernel=(3, 3), convolution_mode="same", activation="relu") for _ in range(repeats)
        ]
        layers.append(Subsampling2D(kernel=(2, 2), stride=(2, 2)))
    layers += [Dense(n_out=4096, activation="relu"), Dense(n_out=4096, activation="relu", dropout=0.5)]
    t = input_type or InputType.convolutional(224, 224, 3)
    return _classifier(layers, t, num_classes, updater, seed, Nesterovs(learning_rate=1e-2, momentum=0.9))
