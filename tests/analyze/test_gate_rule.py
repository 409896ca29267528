"""The rule that withholds the NE probability (livermets.analyze.gate): which flags and limits block it, force."""

from __future__ import annotations

from pathlib import Path

import pytest

from livermets.analyze.gate import MAX_LIVER_EDGE_FRACTION, MAX_OUTSIDE_RANGE, GateRule, phenotype_gate
from livermets.segmentation.qc import FLAG_CODES, QCFlag, QCRecord


def record(*codes: str, edge_fraction: float = 0.0) -> QCRecord:
    flags = [QCFlag(code, f"{code} message") for code in codes]
    edges = ["last_slice"] if edge_fraction else []
    return QCRecord("s1", 1500.0, 4.0, 2, 0, 0, -1000.0, 900.0, 300.0, (0.8, 0.8, 2.5), edge_fraction, edges,
                    flags=flags)


def prediction(excess: float) -> dict[str, float]:
    return {"max_outside_range": excess, "n_features_outside_training_range": 3 if excess else 0}


@pytest.mark.parametrize("code", FLAG_CODES)
def test_each_plausibility_flag(code: str) -> None:
    gate = phenotype_gate(record(code))
    blocking = code in ("no_liver", "liver_volume", "lesion_outside_liver", "not_ct")
    assert gate.withheld == blocking and gate.status == ("withheld" if blocking else "given")
    assert gate.codes == ([code] if blocking else [])
    if blocking:
        assert gate.text() == f"{code}: {code} message"


def test_liver_cut_off_beyond_the_stated_fraction() -> None:
    assert MAX_LIVER_EDGE_FRACTION == 0.01
    assert phenotype_gate(record("liver_cut_off", edge_fraction=0.0099)).status == "given"
    cut = phenotype_gate(record("liver_cut_off", edge_fraction=0.056))
    assert cut.codes == ["liver_cut_off"] and "5.6% of the liver voxels" in cut.text()
    assert phenotype_gate(record(edge_fraction=0.05), rule=GateRule(max_liver_edge_fraction=0.1)).status == "given"


def test_features_out_of_range_beyond_the_limit() -> None:
    assert MAX_OUTSIDE_RANGE == 0.5
    assert phenotype_gate(record(), prediction(0.5)).status == "given"
    far = phenotype_gate(record(), prediction(0.51))
    assert far.codes == ["out_of_range"] and "3 feature(s)" in far.text() and "limit 0.5" in far.text()


def test_force_keeps_the_reasons() -> None:
    gate = phenotype_gate(record("no_liver", "spacing", edge_fraction=0.2), prediction(2.0), force=True)
    assert gate.status == "forced" and not gate.withheld
    assert gate.codes == ["no_liver", "liver_cut_off", "out_of_range"]
    data = gate.to_dict()
    assert data["forced"] is True and [r["code"] for r in data["reasons"]] == gate.codes
    assert data["rule"] == {"blocking_flags": ["no_liver", "liver_volume", "lesion_outside_liver", "not_ct"],
                            "max_liver_edge_fraction": 0.01, "max_outside_range": 0.5}
    assert phenotype_gate(record(), force=True).status == "given"  # nothing to force


def _page(status: str, tmp_path: Path) -> str:
    """The report page of the synthetic case with its phenotype section in ``status``."""
    from report_synthetic import make_case, make_report

    from livermets.analyze.html import render_report_html

    ct, label = make_case()
    report = make_report(ct, label, {})
    gate = phenotype_gate(record("liver_volume"), force=status == "forced")
    report["phenotype"].update(status=gate.status, reason=gate.text(), gate=gate.to_dict())
    if status == "withheld":
        report["phenotype"].update(probability=None, predicted_class=None, label=None)
    return render_report_html(report, tmp_path)


def test_the_page_says_withheld_and_forced(tmp_path: Path) -> None:
    withheld = _page("withheld", tmp_path)
    assert 'id="ne-withheld"' in withheld and 'id="ne-probability"' not in withheld
    assert 'id="phenotype-withheld-top"' in withheld and 'id="phenotype-forced"' not in withheld
    forced = _page("forced", tmp_path)
    assert 'id="ne-probability"' in forced and 'id="ne-withheld"' not in forced
    main = forced.split("<main>", 1)[1].lstrip()
    assert main.startswith('<p class="banner" id="phenotype-forced">NE probability forced with --force-phenotype')
    assert "liver_volume: liver_volume message" in main.split("</p>", 1)[0]
