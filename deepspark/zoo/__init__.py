"""Standard architectures as config builders (DL4J's zoo): LeNet, SimpleCNN, AlexNet, VGG16, ResNet50, UNet,
TextCNN and an LSTM text classifier. Each takes ``input_type`` and ``num_classes``; no weights are downloaded.

Example:
    >>> from deepspark.zoo import resnet50, count_params
    >>> count_params(resnet50()).trainable
    25557032
"""

from deepspark.nn.counting import ParamCount, count_params
from deepspark.zoo._cnn import alexnet, lenet, simple_cnn, vgg16
from deepspark.zoo._resnet import resnet50
from deepspark.zoo._text import lstm_classifier, text_cnn
from deepspark.zoo._unet import unet

__all__ = [
    "ParamCount",
    "alexnet",
    "count_params",
    "lenet",
    "lstm_classifier",
    "resnet50",
    "simple_cnn",
    "text_cnn",
    "unet",
    "vgg16",
]
