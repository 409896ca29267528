"""``livermets imaging``: inspect, convert and check CT volumes and label maps."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from livermets.atomic import outputs
from livermets.errors import UserInputError

log = logging.getLogger(__name__)

app = typer.Typer(help="Read, inspect and convert CT images (NIfTI, NRRD, MHA, DICOM series).", no_args_is_help=True)

SERIES_UID = typer.Option(None, "--series-uid", help="DICOM folder with several series: the SeriesInstanceUID.")


@app.command("info")
def info(
    path: Path = typer.Argument(..., help="Image file or DICOM series folder."),
    series_uid: str | None = SERIES_UID,
) -> None:
    """Print the image geometry and intensity range as JSON.

    Example: ``livermets imaging info ct_dicom_folder/``
    """
    from livermets.imaging import io  # imported on use: the command line starts without it

    typer.echo(json.dumps(io.image_info(io.read_image(path, series_uid)), indent=2))


@app.command("convert")
@outputs("target")
def convert(
    source: Path = typer.Argument(..., help="Image file or DICOM series folder."),
    target: Path = typer.Argument(..., help="Output file; format from the suffix (.nii.gz, .nrrd, .mha)."),
    series_uid: str | None = SERIES_UID,
) -> None:
    """Convert an image to another format with its exact geometry (e.g. DICOM → NIfTI).

    Example: ``livermets imaging convert ct_dicom_folder/ ct.nii.gz``
    """
    from livermets.imaging import io  # imported on use: the command line starts without it

    if not io.is_image_path(target) or target.is_dir():
        raise UserInputError(f"{target}: output must be a file ending in one of {', '.join(io.IMAGE_SUFFIXES)}")
    io.write_image(io.read_image(source, series_uid), target)
    log.info("wrote %s", target)


@app.command("check")
@outputs("resample_label")
def check(
    image: Path = typer.Argument(..., help="CT image (file or DICOM folder)."),
    label: Path = typer.Argument(..., help="Label map (LiTS labels 0/1/2 unless --any-labels)."),
    resample_label: Path | None = typer.Option(
        None, "--resample-label", help="On mismatch, write the label resampled (nearest neighbour) onto the image here."
    ),
    any_labels: bool = typer.Option(False, "--any-labels", help="Accept any integer labels 0..255."),
) -> None:
    """Check that a label map shares the image's geometry (size, spacing, origin, direction).

    Exit code 2 and one line naming the differing properties on mismatch, unless ``--resample-label OUT`` is given.
    """
    from livermets.imaging import geometry, io  # imported on use: the command line starts without it

    ct = io.read_image(image)
    lab = io.read_label(label, allowed=None if any_labels else io.LITS_LABELS)
    diffs = geometry.geometry_differences(ct, lab)
    if not diffs:
        typer.echo(f"ok: {label} matches the geometry of {image}")
        return
    if resample_label is None:
        geometry.check_same_geometry(
            ct, lab, str(image), str(label), hint="--resample-label OUT writes the label resampled onto the image"
        )
    else:
        io.write_label(geometry.resample_label_to(lab, ct), resample_label)
        typer.echo(f"resampled {label} onto {image} ({'; '.join(diffs)}) -> {resample_label}")


@app.command("seg-to-nifti")
@outputs("out")
def seg_to_nifti(
    seg: Path = typer.Argument(..., help="DICOM Segmentation (SEG) file."),
    series: Path = typer.Option(..., "--series", help="Folder of the CT series the SEG was made on (its grid)."),
    out: Path = typer.Option(..., "--out", help="Output label map (.nii.gz, .nrrd, .mha), LiTS labels 0/1/2."),
    series_uid: str | None = SERIES_UID,
) -> None:
    """Convert a DICOM SEG of the liver and its lesions into a 0/1/2 label map on the CT series' grid.

    Liver segments become 1 and lesion segments (category morphologically abnormal structure) 2; other segments are
    ignored. Example: ``livermets imaging seg-to-nifti seg.dcm --series ct_dicom_folder/ --out label.nii.gz``
    """
    from livermets.imaging import io  # imported on use: the command line starts without it
    from livermets.imaging.dicom_seg import read_dicom_seg  # highdicom is imported only when needed

    if not io.is_image_path(out) or out.is_dir():
        raise UserInputError(f"{out}: output must be a file ending in one of {', '.join(io.IMAGE_SUFFIXES)}")
    io.write_label(read_dicom_seg(seg, series, series_uid), out)
    log.info("wrote %s", out)
