"""Integrity checks of an image file or DICOM series, run once by the reader every stage uses.

SimpleITK reads a truncated ``.nii.gz`` or a DICOM series with a missing slice without complaint: the missing voxels
come back as whatever its buffer held, or the slices are stacked with the wrong spacing. :func:`check_image_file`
and :func:`check_series` (called by :func:`livermets.imaging.io.read_image` and
:func:`livermets.imaging.dicom.read_series`) find such input from headers, file sizes and one streaming pass over
compressed data, and raise :class:`~livermets.errors.UserInputError` with one line naming the file (or the folder and
the slice positions) and the problem.

The file checks come in two parts: :func:`check_headers` (headers and file sizes, milliseconds) and the
:class:`StreamCheck` it returns for compressed data (one decompression, about as long as SimpleITK's own);
``read_image`` runs the latter in a thread alongside SimpleITK's read.

What is checked
---------------
- gzip data (``.nii.gz``, any ``.gz``, NRRD ``encoding: gzip``) and zlib data (MHA ``CompressedData = True``): the
  stream is decompressed in chunks of 1 MiB (nothing kept but a byte count and the first bytes) to find a stream that
  ends early, fails its CRC-32/Adler-32 or length check, or is not gzip/zlib data.
- NIfTI-1/NIfTI-2: the header is parsed with nibabel; the bytes it needs (voxel offset + product of the dimensions x
  bytes per voxel) are compared with the bytes present (file size, or decompressed size). ``ct.nii.gz`` with a
  ``ct.nii`` beside it is refused: SimpleITK's NIfTI reader would silently read ``ct.nii``.
- NRRD/NHDR and MHA/MHD: the declared size and pixel type (SimpleITK ``ReadImageInformation``) against the raw data
  (attached, or the detached data file, which must exist), or the decompressed size of gzip/zlib data.
- DICOM series: every file's header (pydicom, ``stop_before_pixels``) must be readable; all slices must share
  orientation, pixel spacing, rows and columns; their positions along the slice normal must be distinct and evenly
  spaced (a step over 1.5 times the median means a missing slice; otherwise steps may differ from the median by
  1 % or 0.01 mm, whichever is larger).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from nibabel.nifti1 import Nifti1Header
from nibabel.nifti2 import Nifti2Header
from nibabel.spatialimages import HeaderDataError
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from livermets.errors import UserInputError

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_BYTES = 1 << 20  # compressed bytes read at a time
MAX_OUTPUT_BYTES = 1 << 25  # decompressed bytes produced at a time (bounds memory for highly compressible data)
NIFTI_HEAD_BYTES = 544
TEXT_HEADER_LIMIT = 1 << 20  # NRRD/MHA headers longer than this are left to SimpleITK
GAP_FACTOR = 1.5  # a step this many times the median step means a missing slice
STEP_RTOL, STEP_ATOL_MM = 0.01, 0.01  # allowed deviation of a step from the median: the larger of the two
DUPLICATE_MM = 0.01  # slices closer than this along the normal are at the same position
ORIENTATION_ATOL, SPACING_ATOL_MM = 1e-4, 1e-4

_ZLIB_PROBLEMS = {
    "incorrect data check": "the decompressed data fail the stream's {check} check",
    "incorrect length check": "the decompressed data fail the stream's length check",
    "incorrect header check": "not {kind} data",
    "unknown compression method": "not {kind} data",
}


@dataclass(frozen=True)
class Inflated:
    """Result of :func:`inflate`: decompressed byte count and the first decompressed bytes."""

    size: int
    head: bytes


def check_image_file(path: str | Path) -> None:
    """Check an image file for truncation and corruption (NIfTI, NRRD, MHA/MHD, any gzip file).

    Runs :func:`check_headers` and then the stream check it returns, if any. Other formats pass unchecked; NRRD and
    MHA headers that cannot be parsed here are left to SimpleITK.

    Raises
    ------
    UserInputError
        One line naming the file and the problem, e.g. ``ct.nii.gz: truncated: the gzip stream ends after 500 bytes
        of compressed data (the file was cut short, or is corrupted)``.
    """
    pending = check_headers(path)
    if pending is not None:
        pending.run()


@dataclass(frozen=True)
class StreamCheck:
    """A compressed stream still to be checked by :meth:`run` (the expensive part of the checks: one decompression).

    ``run`` uses nothing but ``zlib`` and file reads, so it may run in a thread while SimpleITK reads the same file.
    """

    header: Path  # the file named in size messages
    data: Path  # the file holding the stream
    offset: int  # where the stream starts in ``data``
    kind: str  # "gzip" or "zlib"
    need: int  # decompressed bytes the header needs (after ``skip``); 0: only the stream is checked
    detail: str = " of voxel data"  # what ``need`` is made of, for the message
    skip: int = 0  # decompressed bytes before the voxel data

    def run(self) -> None:
        """Decompress the stream once; raise if it is broken or holds fewer bytes than ``need``.

        Raises
        ------
        UserInputError
            The stream ends early, fails its checksum, is not ``kind`` data, or is too short for the header.
        """
        name = str(self.header) if self.data == self.header else f"{self.header} (data file {self.data.name})"
        present = inflate(self.data, self.offset, self.kind, name=name).size - self.skip
        if present < self.need:
            raise UserInputError(f"{self.header}: truncated: the header needs {self.need:,} bytes{self.detail}, "
                                 f"the decompressed data hold {max(present, 0):,}")


def check_headers(path: str | Path) -> StreamCheck | None:
    """The cheap part of :func:`check_image_file`: headers, file sizes, detached data files.

    Returns
    -------
    StreamCheck or None
        The check of the file's compressed stream still to run (``None`` for uncompressed data).

    Raises
    ------
    UserInputError
        A problem found from the header and file sizes (one line naming the file).
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _check_nifti(p)
    if name.endswith((".nrrd", ".nhdr")):
        return _check_nrrd(p)
    if name.endswith((".mha", ".mhd")):
        return _check_metaimage(p)
    if name.endswith(".gz"):
        return StreamCheck(p, p, 0, "gzip", need=0)
    return None


def inflate(path: Path, offset: int = 0, kind: str = "gzip", keep: int = 0, name: str | None = None) -> Inflated:
    """Decompress ``path`` from byte ``offset`` on in chunks, checking the stream; return its size and first bytes.

    Parameters
    ----------
    path
        File holding the compressed stream.
    offset
        Where the stream starts (after an attached header).
    kind
        ``"gzip"`` (several concatenated members allowed) or ``"zlib"`` (zlib or gzip header).
    keep
        How many of the first decompressed bytes to return in :attr:`Inflated.head`.
    name
        How messages name the file (default: ``path``).

    Raises
    ------
    UserInputError
        The stream ends early, fails its checksum or length check, or is not ``kind`` data.
    """
    wbits = 31 if kind == "gzip" else 47
    name = str(path) if name is None else name
    stream = zlib.decompressobj(wbits)
    size, head = 0, b""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(CHUNK_BYTES)
        while data:
            try:
                out = stream.decompress(data, MAX_OUTPUT_BYTES)
                while True:
                    size += len(out)
                    if len(head) < keep:
                        head += out[: keep - len(head)]
                    if not stream.unconsumed_tail:
                        break
                    out = stream.decompress(stream.unconsumed_tail, MAX_OUTPUT_BYTES)
            except zlib.error as exc:
                raise UserInputError(f"{name}: corrupted: {_zlib_problem(exc, kind)}") from None
            if stream.eof:
                data = stream.unused_data if len(stream.unused_data) >= 2 else stream.unused_data + f.read(CHUNK_BYTES)
                if kind != "gzip" or data[:2] != GZIP_MAGIC:
                    break  # trailing bytes after the stream are ignored, as zlib-based readers do
                stream = zlib.decompressobj(wbits)  # another gzip member
                continue
            data = f.read(CHUNK_BYTES)
        compressed = f.tell() - offset
    if not stream.eof:
        raise UserInputError(f"{name}: truncated: the {kind} stream ends after {compressed:,} bytes of compressed data "
                             "(the file was cut short, or is corrupted)")
    return Inflated(size, head)


def _zlib_problem(exc: zlib.error, kind: str) -> str:
    message = str(exc).split(": ", 1)[-1]
    check = "CRC-32" if kind == "gzip" else "Adler-32"
    return _ZLIB_PROBLEMS.get(message, f"invalid {kind} data ({message})").format(kind=kind, check=check)


def _check_nifti(path: Path) -> StreamCheck | None:
    sibling = path.with_name(path.name[:-3])
    if path.name.lower().endswith(".nii.gz") and sibling.exists():
        raise UserInputError(f"{path}: {sibling.name} lies beside it, and SimpleITK's NIfTI reader would read that "
                             "file instead; move or rename one of them")
    with path.open("rb") as f:
        start = f.read(NIFTI_HEAD_BYTES)
    compressed = start[:2] == GZIP_MAGIC
    head = _gzip_head(path, NIFTI_HEAD_BYTES) if compressed else start  # an uncompressed .nii.gz reads too
    layout = _nifti_layout(path, head)
    if layout is None:
        return StreamCheck(path, path, 0, "gzip", need=0) if compressed else None
    offset, voxel_bytes = layout
    detail = f" ({offset:,} of header, {voxel_bytes:,} of voxel data)"
    if compressed:
        return StreamCheck(path, path, 0, "gzip", need=offset + voxel_bytes, detail=detail)
    present = path.stat().st_size
    if present < offset + voxel_bytes:
        raise UserInputError(f"{path}: truncated: the header needs {offset + voxel_bytes:,} bytes{detail}, the file "
                             f"holds {present:,}")
    return None


def _gzip_head(path: Path, n: int) -> bytes:
    """The first ``n`` decompressed bytes of a gzip file, from its first chunk (all of a stream shorter than that)."""
    stream = zlib.decompressobj(31)
    with path.open("rb") as f:
        data = f.read(1 << 16)
    try:
        head = stream.decompress(data, n)
    except zlib.error as exc:
        raise UserInputError(f"{path}: corrupted: {_zlib_problem(exc, 'gzip')}") from None
    return head if len(head) == n else inflate(path, keep=n).head  # a tiny or broken stream: checked whole, now


def _nifti_layout(path: Path, head: bytes) -> tuple[int, int] | None:
    """Voxel data offset and size from a NIfTI-1/2 header, or ``None`` for a header whose data are in another file."""
    sizes = {int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big")}
    klass: type[Nifti1Header] = Nifti1Header if 348 in sizes else Nifti2Header
    if len(head) < 4 or not sizes & {348, 540}:
        raise UserInputError(f"{path}: cannot read image: not a NIfTI file (its first 4 bytes are not 348 or 540)")
    if len(head) < klass.template_dtype.itemsize:
        raise UserInputError(f"{path}: truncated: {len(head)} bytes, shorter than a NIfTI header")
    try:
        header = klass(head[: klass.template_dtype.itemsize], check=False)  # extensions are not parsed
        shape = header.get_data_shape()
        itemsize = header.get_data_dtype().itemsize
        offset = int(header.get_data_offset())
    except KeyError as exc:
        raise UserInputError(f"{path}: cannot read image: unknown NIfTI data type code {exc}") from None
    except (HeaderDataError, ValueError, TypeError) as exc:
        raise UserInputError(f"{path}: cannot read image: NIfTI header not readable ({exc})") from None
    if header["magic"].item() != klass.single_magic:
        return None  # a header/image pair (.hdr/.img) or Analyze: not checked
    return max(offset, klass.single_vox_offset), math.prod(int(n) for n in shape) * itemsize


def _declared_bytes(path: Path) -> int | None:
    """Voxel data size declared by a header (SimpleITK ``ReadImageInformation``), ``None`` if unknown."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None  # SimpleITK's ReadImage will say what is wrong
    component = _COMPONENT_BYTES.get(reader.GetPixelID())
    if component is None:
        return None
    return math.prod(reader.GetSize()) * reader.GetNumberOfComponents() * component


def _component_bytes() -> dict[int, int]:
    table = {}
    for nbytes, names in ((1, ("UInt8", "Int8")), (2, ("UInt16", "Int16")), (4, ("UInt32", "Int32", "Float32")),
                          (8, ("UInt64", "Int64", "Float64"))):
        for name in names:
            table[getattr(sitk, f"sitk{name}")] = nbytes
            table[getattr(sitk, f"sitkVector{name}")] = nbytes
    table[sitk.sitkComplexFloat32], table[sitk.sitkComplexFloat64] = 8, 16
    return table


_COMPONENT_BYTES = _component_bytes()


def _nrrd_header(path: Path) -> tuple[dict[str, str], int] | None:
    """Fields of a NRRD header (keys lower-cased) and the byte offset after its blank line (or the file's end).

    ``None`` when the file does not start with ``NRRD`` or the header is longer than ``TEXT_HEADER_LIMIT``.
    """
    fields: dict[str, str] = {}
    with path.open("rb") as f:
        if not f.readline(TEXT_HEADER_LIMIT).startswith(b"NRRD"):
            return None
        while f.tell() < TEXT_HEADER_LIMIT:
            line = f.readline(TEXT_HEADER_LIMIT).decode("latin-1")
            if not line.strip():
                return fields, f.tell()
            key, sep, value = line.strip().partition(":")
            if sep and not key.startswith("#") and not value.startswith("="):  # not a comment or key:=value pair
                fields[key.strip().lower()] = value.strip()
    return None


def _metaimage_header(path: Path) -> tuple[dict[str, str], int] | None:
    """Fields of a MetaImage header (keys lower-cased) and the byte offset after its ``ElementDataFile`` line.

    ``None`` when a line is not ``Key = Value`` or the header is longer than ``TEXT_HEADER_LIMIT``.
    """
    fields: dict[str, str] = {}
    with path.open("rb") as f:
        while f.tell() < TEXT_HEADER_LIMIT:
            key, sep, value = f.readline(TEXT_HEADER_LIMIT).decode("latin-1").partition("=")
            if not sep:
                return None
            fields[key.strip().lower()] = value.strip()
            if key.strip().lower() == "elementdatafile":
                return fields, f.tell()
    return None


def _data_file(header: Path, name: str) -> Path | None:
    """The detached data file named in a header (relative to the header's folder), ``None`` for lists/patterns."""
    if name.upper().startswith("LIST") or len(name.split()) > 1 or "%" in name:
        return None
    data = Path(name) if Path(name).is_absolute() else header.parent / name
    if not data.is_file():
        raise UserInputError(f"{header}: the data file {name} named in its header does not exist")
    return data


def _check_nrrd(path: Path) -> StreamCheck | None:
    parsed = _nrrd_header(path)
    if parsed is None:
        return None
    fields, start = parsed
    name = fields.get("data file", fields.get("datafile"))
    data = path if name is None else _data_file(path, name)
    encoding = fields.get("encoding", "").lower()
    if data is None or encoding not in ("raw", "gzip", "gz"):
        return None
    if name is not None:
        start = 0
    line_skip = _field_int(fields, "line skip", "lineskip")
    byte_skip = _field_int(fields, "byte skip", "byteskip")
    if line_skip is None or byte_skip is None:
        return None  # malformed: SimpleITK will say so
    if line_skip > 0:
        with data.open("rb") as f:
            f.seek(start)
            for _ in range(line_skip):
                f.readline()
            start = f.tell()
    need = _declared_bytes(path)
    if need is None:
        return None
    if encoding != "raw":
        return StreamCheck(path, data, start, "gzip", need=need, skip=max(byte_skip, 0))
    present = data.stat().st_size - (start if byte_skip == -1 else start + byte_skip)
    _compare(path, need, present, "the file holds" if name is None else f"its data file {data.name} holds")
    return None


def _check_metaimage(path: Path) -> StreamCheck | None:
    parsed = _metaimage_header(path)
    if parsed is None:
        return None
    fields, start = parsed
    if fields.get("binarydata", "true").lower() == "false":
        return None  # ASCII voxel values: not checked
    name = fields["elementdatafile"]
    data = path if name.upper() == "LOCAL" else _data_file(path, name)
    if data is None:
        return None
    header_size = _field_int(fields, "headersize")
    if header_size is None:
        return None
    if data is not path:
        start = max(header_size, 0)
    need = _declared_bytes(path)
    if need is None:
        return None
    if fields.get("compresseddata", "false").lower() == "true":
        return StreamCheck(path, data, start, "zlib", need=need)
    present = data.stat().st_size - (0 if header_size == -1 else start)
    _compare(path, need, present, "the file holds" if data is path else f"its data file {data.name} holds")
    return None


def _field_int(fields: dict[str, str], *keys: str) -> int | None:
    """The integer value of the first of ``keys`` present (0 when none is), ``None`` when it is not an integer."""
    value = next((fields[key] for key in keys if key in fields), "0")
    try:
        return int(value)
    except ValueError:
        return None


def _compare(path: Path, need: int, present: int, where: str) -> None:
    if present < need:
        raise UserInputError(f"{path}: truncated: the header needs {need:,} bytes of voxel data, {where} {present:,}")


@dataclass(frozen=True)
class SliceHeader:
    """What :func:`check_series` compares between the files of a DICOM series (``None``: tag absent or malformed)."""

    path: Path
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, ...] | None
    shape: tuple[int, int] | None
    frames: int


def check_series(files: Sequence[str | Path]) -> None:
    """Check the files of one DICOM series (sorted or not) for unreadable headers, mixed geometry and bad spacing.

    Raises
    ------
    UserInputError
        A file whose header cannot be read (naming the file); slices differing in orientation, pixel spacing or
        rows/columns; two slices at the same position; a missing slice (a step over 1.5 times the median); steps
        differing from the median by more than 1 % or 0.01 mm, whichever is larger (naming the folder and positions).
    """
    slices = [read_slice_header(Path(f)) for f in files]
    if len(slices) < 2:
        return
    folder = slices[0].path.parent
    _check_same_frame(folder, slices)
    if any(s.position is None or s.orientation is None for s in slices) or any(s.frames > 1 for s in slices):
        log.warning("%s: slice positions not checked (some files lack ImagePositionPatient/ImageOrientationPatient "
                     "or hold several frames)", folder)
        return
    _check_positions(folder, slices)


def read_slice_header(path: Path) -> SliceHeader:
    """The geometry tags of one DICOM file, read without its pixel data.

    Raises
    ------
    UserInputError
        The file is not readable as DICOM (naming the file and pydicom's reason).
    """
    try:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)  # no preamble: GDCM reads those too
    except Exception as exc:  # pydicom raises many types for damaged files; all mean "not readable"
        reason = (str(exc).strip().splitlines() or ["unknown reason"])[0][:200]
        raise UserInputError(f"{path}: cannot read DICOM file ({type(exc).__name__}: {reason})") from None
    rows, columns = _numbers(ds, "Rows", 1), _numbers(ds, "Columns", 1)
    if not rows or not columns:
        raise UserInputError(f"{path}: cannot read DICOM file (no Rows/Columns: not a DICOM image)")
    return SliceHeader(
        path=path,
        position=_numbers(ds, "ImagePositionPatient", 3),
        orientation=_numbers(ds, "ImageOrientationPatient", 6),
        spacing=_numbers(ds, "PixelSpacing", 2),
        shape=(int(rows[0]), int(columns[0])),
        frames=int((_numbers(ds, "NumberOfFrames", 1) or (1,))[0]),
    )


def _numbers(ds: Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    values = list(value) if isinstance(value, MultiValue | list | tuple) else [value]
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count and all(math.isfinite(v) for v in numbers) else None


def _check_same_frame(folder: Path, slices: list[SliceHeader]) -> None:
    first = slices[0]
    for s in slices[1:]:
        for what, a, b, atol in (("image orientation", first.orientation, s.orientation, ORIENTATION_ATOL),
                                 ("pixel spacing", first.spacing, s.spacing, SPACING_ATOL_MM),
                                 ("rows x columns", first.shape, s.shape, 0.0)):
            if (a is None) != (b is None) or (a is not None and b is not None and not np.allclose(a, b, rtol=0,
                                                                                                      atol=atol)):
                raise UserInputError(f"{folder}: slices differ in {what}: {first.path.name} has {_show(a)}, "
                                     f"{s.path.name} has {_show(b)}")


def _check_positions(folder: Path, slices: list[SliceHeader]) -> None:
    orientation = np.asarray(slices[0].orientation)
    normal = np.cross(orientation[:3], orientation[3:])
    located = sorted((float(np.dot(normal, s.position or ())), s.path.name) for s in slices)
    positions = np.array([p for p, _ in located])
    steps = np.diff(positions)
    same = np.flatnonzero(steps <= DUPLICATE_MM)
    if same.size:
        i = same[0]
        raise UserInputError(f"{folder}: {located[i][1]} and {located[i + 1][1]} lie at the same slice position "
                             f"{_mm(positions[i])} mm: a duplicated slice, or two acquisitions mixed in one series")
    if steps.size < 2:
        return
    step = float(np.median(steps))
    gaps = np.flatnonzero(steps > GAP_FACTOR * step)
    if gaps.size:
        i = gaps[0]
        missing = max(round(steps[i] / step) - 1, 1)
        what = "a slice is missing" if missing == 1 else f"{missing} slices are missing"
        raise UserInputError(f"{folder}: slice positions jump from {_mm(positions[i])} to {_mm(positions[i + 1])} mm "
                             f"(step {_mm(step)} mm elsewhere): {what}")
    tolerance = max(STEP_RTOL * step, STEP_ATOL_MM)
    uneven = np.flatnonzero(np.abs(steps - step) > tolerance)
    if uneven.size:
        i = uneven[0]
        raise UserInputError(f"{folder}: inconsistent slice spacing: step {_mm(steps[i])} mm between positions "
                             f"{_mm(positions[i])} and {_mm(positions[i + 1])} mm, {_mm(step)} mm elsewhere "
                             f"(tolerance {_mm(tolerance)} mm)")


def _mm(value: float) -> str:
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _show(values: tuple[float, ...] | tuple[int, int] | None) -> str:
    return "none" if values is None else "(" + ", ".join(f"{v:g}" for v in values) + ")"
