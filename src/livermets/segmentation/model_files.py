"""File names inside a model folder (see :mod:`livermets.segmentation.monai.train` for the layout)."""

from pathlib import Path

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
LOG_FILE = "train_log.csv"
CURVE_FILE = "training_curve.png"
PROVENANCE_FILE = "provenance.json"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
THRESHOLD_FILE = "lesion_threshold.csv"
DEFAULT_MODEL_DIR = Path(__file__).with_name("models") / "default"
"""The model shipped inside the package (registry name ``shipped``)."""
