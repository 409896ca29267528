"""``livermets lesions``: per-lesion tables of a label map (connected components with cc3d)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from livermets.atomic import outputs, write_csv

log = logging.getLogger(__name__)

app = typer.Typer(help="Lesions as 3D connected components: per-lesion tables.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Lesions as 3D connected components (cc3d): per-lesion tables."""


@app.command("table")
@outputs("out")
def table(
    label: Path = typer.Argument(..., help="Label map (0 background, 1 liver, 2 lesion)."),
    out: Path = typer.Option(..., "--out", help="Output CSV, one row per lesion."),
    image: Path | None = typer.Option(None, "--image", help="CT on the same grid: adds hu_mean and hu_std."),
    liver: Path | None = typer.Option(
        None, "--liver", help="Second label map on the same grid whose non-zero voxels are the liver "
        "(e.g. the reference when LABEL is a prediction): adds fraction_in_liver."),
    connectivity: int = typer.Option(26, "--connectivity", help="cc3d connectivity: 6, 18 or 26 (paper: 26)."),
) -> None:
    """Write one row per lesion: id, voxels, volume (mL), centroid (mm), bounding box, longest axial diameter
    (mm), liver contact fraction, and mean/std HU with --image.

    Example: ``livermets lesions table seg.nii.gz --image ct.nii.gz --out lesions.csv``
    """
    from livermets.imaging.geometry import check_same_geometry
    from livermets.imaging.io import read_image, read_label
    from livermets.lesions.components import lesion_table

    label_image = read_label(label)
    ct = None
    if image is not None:
        ct = read_image(image)
        check_same_geometry(ct, label_image, str(image), str(label))
    liver_image = None
    if liver is not None:
        liver_image = read_label(liver)
        check_same_geometry(liver_image, label_image, str(liver), str(label))
    frame = lesion_table(label_image, image=ct, liver=liver_image, connectivity=connectivity)
    write_csv(out, frame)
    log.info("%d lesions in %s -> %s", len(frame), label, out)
