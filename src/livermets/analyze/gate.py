"""When ``analyze`` and ``run`` withhold the NE probability: one rule, :func:`phenotype_gate`.

A probability computed from a failed segmentation, or from features far outside anything the phenotype model saw,
is a number without meaning; printed beside a warning it is quoted without the warning. So the probability (and the
class, the fold probabilities and the per-lesion probabilities) is not written when any of these holds:

* the plausibility checks (:mod:`livermets.segmentation.qc`) raised ``no_liver``, ``liver_volume``,
  ``lesion_outside_liver`` or ``not_ct`` (:data:`BLOCKING_FLAGS`): the masks are not a liver with its lesions;
* more than :data:`MAX_LIVER_EDGE_FRACTION` of the liver voxels lie on the image boundary (the measure of
  ``liver_cut_off``): the field of view cuts the liver, so lesions and features are incomplete;
* a feature lies further outside the phenotype model's training range than :data:`MAX_OUTSIDE_RANGE` times that
  range (``max_outside_range`` of the prediction): the probability is an extrapolation.

``--force-phenotype`` (``AnalyzeOptions(force_phenotype=True)``) writes the probability all the same; the reasons stay
in every output and the report's first line says that it was forced.

The limits. *Liver cut off*: 1 % of the liver's voxels on the boundary. A liver whose tip touches the first or last
slice of a scan that covers it stays well below (about 0.1-0.5 %); a liver cut at mid-height has about one boundary
slice in 75 on a 1 mm scan (1.3 %) and one in 15 on a 5 mm scan (7 %); the two real CTs of TotalSegmentator's
examples, which cut the liver, have 5.6 % and 9.7 %. On 5 mm slices a cut through the dome can exceed 1 % while
missing little of the liver: check the coronal view and use ``--force-phenotype``. *Out of range*: 0.5 of a
feature's training range beyond its minimum or maximum. Held out one patient at a time from the paper's own
published table (227 series, 50 patients; ranges from the other 49 patients), 22 % of the series have a feature
outside the range, 5 % exceed 0.27 and 3.1 % (7 series) exceed 0.5: the limit withholds few scans of the intended
population and every scan the model has to extrapolate to wildly.

Examples
--------
>>> from livermets.segmentation.qc import QCFlag, QCRecord
>>> qc = QCRecord("s1", 180.0, 2.0, 1, 0, 1, -1000.0, 900.0, 300.0, (0.8, 0.8, 3.0), 0.12,
...               flags=[QCFlag("liver_volume", "liver volume 180 mL outside 800..3500 mL"),
...                      QCFlag("lesion_outside_liver", "1 of 1 lesion components do not touch the liver")])
>>> gate = phenotype_gate(qc)
>>> gate.status, [reason.code for reason in gate.reasons]
('withheld', ['liver_volume', 'lesion_outside_liver', 'liver_cut_off'])
>>> phenotype_gate(qc, force=True).status
'forced'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from livermets.segmentation.qc import QCRecord

BLOCKING_FLAGS = ("no_liver", "liver_volume", "lesion_outside_liver", "not_ct")
"""Plausibility flags after which the masks are not a liver with its lesions: no NE probability."""
MAX_LIVER_EDGE_FRACTION = 0.01
"""More than this fraction of the liver voxels on the image boundary: the liver is cut off, no NE probability."""
MAX_OUTSIDE_RANGE = 0.5
"""A feature beyond its training range by more than this many times that range: no NE probability."""


@dataclass(frozen=True)
class GateRule:
    """The limits of :func:`phenotype_gate` (the defaults are the documented rule)."""

    blocking_flags: tuple[str, ...] = BLOCKING_FLAGS
    max_liver_edge_fraction: float = MAX_LIVER_EDGE_FRACTION
    max_outside_range: float = MAX_OUTSIDE_RANGE

    def to_dict(self) -> dict[str, Any]:
        return {"blocking_flags": list(self.blocking_flags), "max_liver_edge_fraction": self.max_liver_edge_fraction,
                "max_outside_range": self.max_outside_range}


@dataclass(frozen=True)
class GateReason:
    """Why the probability is withheld: a plausibility flag code or ``out_of_range``, and a sentence."""

    code: str
    message: str


@dataclass(frozen=True)
class PhenotypeGate:
    """The decision for one scan: the reasons found (none: the probability is given) and whether it was forced."""

    reasons: tuple[GateReason, ...] = ()
    forced: bool = False
    rule: GateRule = field(default_factory=GateRule)

    @property
    def withheld(self) -> bool:
        """True when no probability may be written."""
        return bool(self.reasons) and not self.forced

    @property
    def status(self) -> str:
        """``given`` (no reason), ``withheld`` or ``forced`` (reasons, written all the same)."""
        if not self.reasons:
            return "given"
        return "forced" if self.forced else "withheld"

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    def text(self) -> str:
        """The reasons in one line (``summary.csv``'s ``ne_reason``); empty when there is none."""
        return "; ".join(f"{reason.code}: {reason.message}" for reason in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """``report.json``'s ``phenotype.gate``."""
        return {"status": self.status, "forced": self.forced, "reasons": [asdict(r) for r in self.reasons],
                "rule": self.rule.to_dict()}


def segmentation_reasons(qc: QCRecord, rule: GateRule | None = None) -> list[GateReason]:
    """The reasons in the plausibility record: blocking flags and a liver cut off beyond the limit."""
    rule = rule or GateRule()
    reasons = [GateReason(flag.code, flag.message) for flag in qc.flags if flag.code in rule.blocking_flags]
    if qc.liver_edge_fraction > rule.max_liver_edge_fraction:
        reasons.append(GateReason(
            "liver_cut_off", f"{qc.liver_edge_fraction:.1%} of the liver voxels lie on the image boundary "
            f"({', '.join(qc.liver_edges)}), more than {rule.max_liver_edge_fraction:.0%}: the field of view cuts "
            "the liver"))
    return reasons


def feature_reasons(prediction: Mapping[str, Any], rule: GateRule | None = None) -> list[GateReason]:
    """The reason in a phenotype prediction row: a feature too far outside the training range."""
    rule = rule or GateRule()
    excess = float(prediction["max_outside_range"])
    if excess <= rule.max_outside_range:
        return []
    return [GateReason("out_of_range", f"{int(prediction['n_features_outside_training_range'])} feature(s) outside "
                       f"the phenotype model's training range, up to {excess:.2g} times that range beyond it (limit "
                       f"{rule.max_outside_range:g})")]


def phenotype_gate(qc: QCRecord, prediction: Mapping[str, Any] | None = None, force: bool = False,
                   rule: GateRule | None = None) -> PhenotypeGate:
    """Decide whether the NE probability of a scan may be written.

    Parameters
    ----------
    qc
        The plausibility record of the (final) label map.
    prediction
        The phenotype prediction row (``max_outside_range``, ``n_features_outside_training_range``), when one was
        computed.
    force
        Write the probability even with reasons (``--force-phenotype``).
    rule
        The limits (default: :class:`GateRule`, the documented rule).

    Returns
    -------
    PhenotypeGate
        The reasons (segmentation first, then features) and the resulting status.
    """
    rule = rule or GateRule()
    reasons = segmentation_reasons(qc, rule)
    if prediction is not None:
        reasons += feature_reasons(prediction, rule)
    return PhenotypeGate(tuple(reasons), force, rule)
