"""Where each data set is published, with the size and SHA-256 of every file.

Sizes and SHA-256 values are those recorded for these exact URLs by a public dataset catalogue (TensorFlow
Datasets' checksum records of the publishers' files); deepspark refuses a download that does not match.
The UCI synthetic control file has no published checksum: its hash is recorded on first download.
"""

from __future__ import annotations

from deepspark.datasets._fetch import RemoteFile

_MNIST = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

MNIST: dict[str, RemoteFile] = {
    "train-images": RemoteFile(
        "mnist", "train-images-idx3-ubyte.gz", _MNIST + "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422,
    ),
    "train-labels": RemoteFile(
        "mnist", "train-labels-idx1-ubyte.gz", _MNIST + "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881,
    ),
    "test-images": RemoteFile(
        "mnist", "t10k-images-idx3-ubyte.gz", _MNIST + "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877,
    ),
    "test-labels": RemoteFile(
        "mnist", "t10k-labels-idx1-ubyte.gz", _MNIST + "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542,
    ),
}

FASHION_MNIST: dict[str, RemoteFile] = {
    "train-images": RemoteFile(
        "fashion-mnist", "train-images-idx3-ubyte.gz", _FASHION + "train-images-idx3-ubyte.gz",
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880,
    ),
    "train-labels": RemoteFile(
        "fashion-mnist", "train-labels-idx1-ubyte.gz", _FASHION + "train-labels-idx1-ubyte.gz",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515,
    ),
    "test-images": RemoteFile(
        "fashion-mnist", "t10k-images-idx3-ubyte.gz", _FASHION + "t10k-images-idx3-ubyte.gz",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102,
    ),
    "test-labels": RemoteFile(
        "fashion-mnist", "t10k-labels-idx1-ubyte.gz", _FASHION + "t10k-labels-idx1-ubyte.gz",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148,
    ),
}

EMNIST = RemoteFile(
    "emnist", "gzip.zip", "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/gzip.zip",
    "fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e", 561753746,
)

CIFAR10 = RemoteFile(
    "cifar-10", "cifar-10-binary.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171,
)

IRIS = RemoteFile(
    "iris", "iris.data", "https://archive.ics.uci.edu/ml/machine-learning-databases/iris/iris.data",
    "6f608b71a7317216319b4d27b4d9bc84e6abd734eda7872b71a458569e2656c0", 4551,
)

SYNTHETIC_CONTROL = RemoteFile(
    "uci-synthetic-control", "synthetic_control.data",
    "https://archive.ics.uci.edu/ml/machine-learning-databases/synthetic_control-mld/synthetic_control.data",
    None,
)
