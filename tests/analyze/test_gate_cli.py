"""No NE probability from an unusable segmentation, through ``livermets analyze``: a real CT cropped to its 20
head-most slices (the liver cut off; a metastasis inserted so that there are features) and a real CT without liver;
``--force-phenotype`` writes the probability and the report says so in its first line."""

from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from cli_helpers import run_cli
from livermets.analyze.gate import BLOCKING_FLAGS
from livermets.phenotype.training import predict_with_folder
from livermets.synth.insertion import LesionSpec, insert_lesions
from livermets.synth.tissues import TOTALSEG_LIVER

GATE_CODES = {*BLOCKING_FLAGS, "liver_cut_off", "out_of_range"}
N_SLICES = 20


def _cut_liver_with_tumour(ct: Path, seg: Path, out: Path) -> Path:
    """The ``N_SLICES`` head-most slices of ``ct`` (the liver cut off) with a 35 mm metastasis inserted into the
    liver of ``seg`` (TotalSegmentator's labels of the 30 head-most slices), so that the scan has lesion features."""
    image = sitk.ReadImage(str(ct))
    assert image.GetDirection()[8] > 0  # LPS: +z points to the head, the last slices are the head-most
    part = image[:, :, image.GetDepth() - N_SLICES:]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(seg)))[-N_SLICES:]
    hu = sitk.GetArrayFromImage(part).astype(np.float32)
    liver = (labels == TOTALSEG_LIVER).astype(np.float32)
    spacing = tuple(float(s) for s in reversed(part.GetSpacing()))
    insert_lesions(hu, liver, spacing, np.random.default_rng(0), [LesionSpec("hypo", 35.0, 50.0)])  # type: ignore[arg-type]
    tumour = sitk.GetImageFromArray(np.rint(hu).astype(np.int16))
    tumour.CopyInformation(part)
    sitk.WriteImage(tumour, str(out))
    return out


def _analyze(ct: Path, ne_model: Path, out: Path, *extra: str) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        code = run_cli(monkeypatch, "-q", "analyze", str(ct), "--phenotype-model", str(ne_model), "--out", str(out),
                       *extra)
    assert code == 0
    return {"report": json.loads((out / "report.json").read_text()),
            "summary": pd.read_csv(out / "summary.csv", keep_default_na=False, na_values=[""]),
            "html": (out / "report.html").read_text(encoding="utf-8")}


class _Text(HTMLParser):
    """The visible text of a page's body, one entry per text node (no style, no head)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("style", "title", "head")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "title", "head")

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(" ".join(data.split()))


def first_line(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return parser.parts[0]


@pytest.fixture(scope="module")
def cropped(shared_data: Callable[..., Path], ne_model: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """``analyze`` of the 20 head-most slices of a real CT, without and with ``--force-phenotype``."""
    folder = tmp_path_factory.mktemp("cropped")
    ct = _cut_liver_with_tumour(shared_data("totalsegmentator", "example_ct.nii.gz"),
                                shared_data("totalsegmentator", "example_seg.nii.gz"), folder / "head20.nii.gz")
    return {"withheld": _analyze(ct, ne_model, folder / "withheld"),
            "forced": _analyze(ct, ne_model, folder / "forced", "--force-phenotype"),
            "out": {"forced": folder / "forced"}}


def test_cropped_scan_gives_no_ne_probability(cropped: dict[str, dict[str, Any]]) -> None:
    report, summary, html = (cropped["withheld"][k] for k in ("report", "summary", "html"))
    phenotype = report["phenotype"]
    codes = [reason["code"] for reason in phenotype["gate"]["reasons"]]
    assert phenotype["status"] == "withheld" and codes and set(codes) <= GATE_CODES
    flagged = set(report["qc"]["flag_codes"])
    assert {c for c in codes if c in BLOCKING_FLAGS} <= flagged  # every blocking reason is a raised flag
    assert all(phenotype[key] is None for key in ("probability", "predicted_class", "label"))
    row = summary.iloc[0]
    assert pd.isna(row["ne_probability"]) and pd.isna(row["ne_class"]) and row["ne_status"] == "withheld"
    assert all(code in row["ne_reason"] for code in codes)
    assert 'id="ne-probability"' not in html and 'id="ne-withheld"' in html and "No NE probability" in html
    assert first_line(html).startswith("Liver metastasis analysis")  # no forced line
    assert report["warnings"][0].startswith("No NE probability:")


def test_force_phenotype_writes_it_and_the_report_says_so_first(cropped: dict[str, dict[str, Any]],
                                                               ne_model: Path) -> None:
    report, summary, html = (cropped["forced"][k] for k in ("report", "summary", "html"))
    phenotype = report["phenotype"]
    assert phenotype["status"] == "forced" and phenotype["gate"]["forced"] is True
    forced = {r["code"] for r in phenotype["gate"]["reasons"]}
    withheld = {r["code"] for r in cropped["withheld"]["report"]["phenotype"]["gate"]["reasons"]}
    assert withheld <= forced and forced - withheld <= {"out_of_range"}  # the features may add their reason
    features = pd.read_csv(cropped["out"]["forced"] / "features.csv")
    independent = float(predict_with_folder(ne_model, features, "features.csv").loc[0, "probability"])
    row = summary.iloc[0]
    assert row["ne_status"] == "forced" and row["ne_probability"] == pytest.approx(round(independent, 4))
    line = first_line(html)
    assert line.startswith("NE probability forced with --force-phenotype") and phenotype["reason"] in line
    assert report["warnings"][0].startswith("NE probability forced")


def test_the_report_says_what_the_number_is(cropped: dict[str, dict[str, Any]]) -> None:
    about = cropped["forced"]["report"]["phenotype"]["about"]
    assert about["calibrated"] is False and "small cell lung cancer" in about["intended_population"]
    assert "contrast-enhanced CT" in about["inputs"]
    assert about["fold_disagreement_rule"] == ("The fold models disagree when their probabilities span 0.3 or more "
                                               "(maximum minus minimum).")
    html = cropped["forced"]["html"]
    assert 'id="phenotype-about"' in html and "Not calibrated" in html
    docs = Path(__file__).resolve().parents[2] / "docs"
    for name in ("analyze.md", "phenotype.md"):  # the docs state the same rule, and no other
        text = " ".join((docs / name).read_text(encoding="utf-8").split())
        assert "span 0.3 or more" in text and "standard deviation above" not in text, name


def water_phantom(path: Path) -> Path:
    """A CT without liver: a quality-assurance scan of a 6 cm water cylinder with a dense rod, in air (HU, noise
    10 HU, 0.9 x 0.9 x 3 mm)."""
    shape = (20, 256, 256)
    _, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    radius = np.hypot((x - 128) * 0.9, (y - 128) * 0.9)
    hu = np.full(shape, -1000.0)
    hu[radius < 30] = 0.0
    hu[radius < 5] = 1000.0
    hu += np.random.default_rng(0).normal(0.0, 10.0, shape) * (hu > -500)
    image = sitk.GetImageFromArray(hu.astype(np.int16))
    image.SetSpacing((0.9, 0.9, 3.0))
    sitk.WriteImage(image, str(path))
    return path


def test_no_liver_scan_gives_no_ne_probability(ne_model: Path, tmp_path: Path) -> None:
    run = _analyze(water_phantom(tmp_path / "water.nii.gz"), ne_model, tmp_path / "out")
    report, summary = run["report"], run["summary"]
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "label.nii.gz")))
    assert np.count_nonzero(label == 1) == 0  # the model found no liver
    phenotype = report["phenotype"]
    codes = [r["code"] for r in phenotype["gate"]["reasons"]]
    assert phenotype["status"] == "withheld" and phenotype["probability"] is None
    assert codes == (["no_liver"] if np.count_nonzero(label) == 0 else ["lesion_outside_liver"])
    row = summary.iloc[0]
    assert pd.isna(row["ne_probability"]) and row["ne_status"] == "withheld" and codes[0] in row["ne_reason"]
    assert "No NE probability" in run["html"]
