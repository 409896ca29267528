"""Prediction options: one typed, validated object for what a prediction run may change in a model's settings.

A model folder carries its inference settings (``config.yaml``'s ``inference`` section,
:class:`~livermets.segmentation.config.InferenceConfig`). A prediction run may change some of them; every field of
:class:`PredictionOptions` left at ``None`` keeps the model's value. The two settings whose model value can itself be
"off" take an explicit word for it: ``lesion_threshold="argmax"`` (plain argmax labels, no lesion threshold) and
``lesion_max_distance_mm="keep_all"`` (keep lesions anywhere), so ``None`` always means "the model's value".

Examples
--------
>>> options = PredictionOptions(overlap=0.5, lesion_threshold="argmax")
>>> options.overrides()
{'overlap': 0.5, 'lesion_threshold': None}
>>> PredictionOptions(overlap=1.5)
Traceback (most recent call last):
...
livermets.errors.ParameterError: overlap 1.5: must be in [0, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from livermets.errors import ParameterError

ARGMAX = "argmax"
KEEP_ALL = "keep_all"
LIVER_CHOICES = ("largest_liver", "lesion_max_distance_mm")
"""Post-processing that a composite (liver model + lesion model) applies itself, not its parts."""
MONAI_ONLY = ("sw_batch_size", "resample", "lesion_threshold")
"""Options without an nnU-Net counterpart (nnU-Net labels are its argmax on its own resampling)."""
RUNTIME = ("engine", "threads")
"""Options of how the network runs, not of the model's settings (never in :meth:`PredictionOptions.overrides`)."""
ENGINE_CHOICES = ("auto", "torch", "onnxruntime", "openvino")


@dataclass(frozen=True)
class PredictionOptions:
    """What a prediction run changes in the model's inference settings (``None``: the model's value).

    Parameters
    ----------
    overlap
        Sliding-window overlap in [0, 1) (nnU-Net: tile step ``1 - overlap``).
    blend_mode
        ``gaussian`` or ``constant`` blending of the windows.
    sw_batch_size
        Windows per forward pass (MONAI models).
    resample
        Back to the input grid by ``probabilities`` (linear) or ``labels`` (nearest) (MONAI models).
    largest_liver
        Keep only the largest liver component.
    lesion_max_distance_mm
        Drop lesion voxels farther than this from the liver (mm, >= 0); ``"keep_all"``: keep lesions anywhere.
    lesion_threshold
        Lesion where its probability reaches this, in (0, 1); ``"argmax"``: plain argmax labels (MONAI models).
    min_lesion_ml, min_lesion_diameter_mm
        After prediction, remove lesions smaller than this volume (mL) or with a shorter longest axial diameter
        (mm); ``0`` turns the limit off (:mod:`livermets.segmentation.lesion_size`; every kind of model).
    engine
        Which engine runs the network's forward pass: ``torch``, ``onnxruntime``, ``openvino``, or ``auto`` (the
        fastest installed on CPU, PyTorch on CUDA; :mod:`livermets.segmentation.engines`).
    threads
        Threads of the engine (``None``: the cores this process may use).

    Raises
    ------
    ParameterError
        A value out of its range, naming the parameter.
    """

    overlap: float | None = None
    blend_mode: Literal["gaussian", "constant"] | None = None
    sw_batch_size: int | None = None
    resample: Literal["probabilities", "labels"] | None = None
    largest_liver: bool | None = None
    lesion_max_distance_mm: float | Literal["keep_all"] | None = None
    lesion_threshold: float | Literal["argmax"] | None = None
    min_lesion_ml: float | None = None
    min_lesion_diameter_mm: float | None = None
    engine: Literal["auto", "torch", "onnxruntime", "openvino"] | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        _check_number(self.overlap, "overlap", 0.0, 1.0)
        if self.sw_batch_size is not None and (isinstance(self.sw_batch_size, bool) or self.sw_batch_size < 1):
            raise ParameterError("{sw_batch_size} {value}: must be a whole number >= 1", value=self.sw_batch_size)
        _check_choice(self.blend_mode, "blend_mode", ("gaussian", "constant"))
        _check_choice(self.resample, "resample", ("probabilities", "labels"))
        _check_choice(self.engine, "engine", ENGINE_CHOICES)
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ParameterError.about("threads", "must be a whole number >= 1", self.threads)
        if self.lesion_max_distance_mm != KEEP_ALL:
            _check_number(self.lesion_max_distance_mm, "lesion_max_distance_mm", 0.0, math.inf)
        _check_number(self.min_lesion_ml, "min_lesion_ml", 0.0, math.inf)
        _check_number(self.min_lesion_diameter_mm, "min_lesion_diameter_mm", 0.0, math.inf)
        if self.lesion_threshold != ARGMAX:
            _check_number(self.lesion_threshold, "lesion_threshold", 0.0, 1.0, open_low=True)

    def overrides(self) -> dict[str, Any]:
        """The ``inference`` settings to change, in the model config's terms (``argmax``/``keep_all`` -> None)."""
        changed = {f.name: getattr(self, f.name) for f in fields(self)
                   if getattr(self, f.name) is not None and f.name not in RUNTIME}
        return {name: None if value in (ARGMAX, KEEP_ALL) else value for name, value in changed.items()}

    def given(self) -> tuple[str, ...]:
        """The names of the options set (not ``None``)."""
        return tuple(f.name for f in fields(self) if getattr(self, f.name) is not None)

    def without(self, *names: str) -> PredictionOptions:
        """These options with ``names`` back at the model's value."""
        return replace(self, **dict.fromkeys(names))


def _check_number(value: Any, name: str, low: float, high: float, open_low: bool = False) -> None:
    """``value`` is None or a finite number in ``[low, high)`` (``(low, high)`` with ``open_low``)."""
    if value is None:
        return
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    inside = (low < number if open_low else low <= number) and number < high
    if inside:
        return
    if high == math.inf:
        raise ParameterError.about(name, f"must be a number >= {low:g}", value)
    bracket = "(" if open_low else "["
    raise ParameterError.about(name, f"must be in {bracket}{low:g}, {high:g})", value)


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise ParameterError.about(name, f"expected one of {', '.join(choices)}", value)
