"""Model import: Keras ``.keras`` archives and legacy ``.h5`` files as deepspark networks (zipfile, json, h5py only)."""

from deepspark.modelimport._assemble import SUPPORTED_LAYERS
from deepspark.modelimport.keras import ImportedLayer, KerasImport, import_keras, inspect_keras

__all__ = ["SUPPORTED_LAYERS", "ImportedLayer", "KerasImport", "import_keras", "inspect_keras"]
