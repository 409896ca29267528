"""analyze and run: one CT (or a cohort manifest) in; label map, DICOM SEG, lesions, burden, features, NE phenotype,
figures and a self-contained report out. See docs/analyze.md and docs/report.md.

The public names are imported on first use (PEP 562), so that ``livermets --help`` does not load torch.

Examples
--------
>>> from livermets.analyze import Analyzer, AnalyzeOptions  # doctest: +SKIP
>>> Analyzer(AnalyzeOptions(phenotype_model="models/ne_lr")).analyze("ct.nii.gz", "reports/ct")  # doctest: +SKIP
"""

from __future__ import annotations

from livermets.lazy import lazy_getattr

_WHERE = {
    "Analyzer": "single", "AnalyzeOptions": "options", "AnalyzeResult": "single",
    "run_cohort": "cohort", "RunSummary": "cohort",
    "PhenotypeModel": "phenotype", "read_scan": "inputs", "ScanInput": "inputs",
    "staged_folder": "folder", "write_report_html": "html", "axial_montage": "figures", "coronal_view": "figures",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_getattr(__name__, _WHERE)
