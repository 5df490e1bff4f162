"""DICOM in: de-identified before anything is stored, embedded or shown to a model, then windowed to a
viewable picture.

De-identification follows the Basic Application Level Confidentiality Profile (DICOM PS3.15 Annex E) with
the Retain Longitudinal Temporal Information with Modified Dates and Clean Descriptors options:

- what names, identifies or describes a person or a place is removed: every person name (VR PN) but the
  patient's, which becomes a pseudonym; identifiers, addresses, birth date, age, sex, size, weight, the
  institution, stations and devices, accession and study numbers, comments; free text (LO, SH, ST, LT, UT,
  UC) except the study, series and protocol descriptions and the body part, which are kept with every
  identifier found in the header cut out of them; sequences, but the lookup tables that show the pixels;
  private tags; overlays and curves (groups 60xx, 50xx: they can carry burned-in names);
- the patient's name and ID become one pseudonym, the same for the same patient;
- dates (DA, DT) move back by a number of days fixed per patient (so intervals between studies survive);
  times stay;
- instance UIDs (studies, series, images, frames of reference) are replaced, consistently: the same UID
  becomes the same new ``2.25.`` UID; class and transfer-syntax UIDs, which name no one, stay.

Text burned into the pixels (an ultrasound's patient banner) is found by the OCR text detector and blacked
out in the picture that is kept. The original file is never stored: what the knowledge base or a
conversation keeps is the cleaned picture and the cleaned header text. Pseudonyms, date shifts and new UIDs
come from a keyed hash (HMAC-SHA-256) with a secret of the installation (``deid_key``), so nobody without
that key can recompute them from an identifier."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from struct import error as StructError
from typing import TYPE_CHECKING

from retrieval.errors import UnreadableFileError, named

if TYPE_CHECKING:
    from PIL.Image import Image

SUFFIXES = {".dcm", ".dicom"}
MAX_DATE_SHIFT_DAYS = 3650
# (0012,0063) is LO, 64 characters at most: the profile and its options in short
METHOD = "PS3.15 E basic profile; dates shifted; text and pixels cleaned"

# PS3.15 Table E.1-1 attributes the basic profile removes or empties, beyond the rules by VR below (person
# names, free text, sequences, dates, UIDs are handled by their VR whatever their keyword).
REMOVE = {
    "PatientID", "IssuerOfPatientID", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
    "PatientBirthDate", "PatientBirthTime", "PatientBirthName", "PatientAge", "PatientSex", "PatientSize",
    "PatientWeight", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName", "MilitaryRank",
    "BranchOfService", "MedicalRecordLocator", "EthnicGroup", "Occupation", "PatientReligiousPreference",
    "PatientComments", "AdditionalPatientHistory", "PregnancyStatus", "SmokingStatus", "PatientState",
    "AccessionNumber", "StudyID", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "StationName", "DeviceSerialNumber", "DetectorID", "PlateID", "CassetteID", "GantryID", "DeviceUID",
    "ReferringPhysicianName", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord",
    "RequestingPhysician", "ScheduledPerformingPhysicianName", "AdmissionID", "AdmittingDiagnosesDescription",
    "ImageComments", "StudyComments", "RequestedProcedureID", "PerformedProcedureStepID",
    "ScheduledProcedureStepID", "FillerOrderNumberImagingServiceRequest",
    "PlacerOrderNumberImagingServiceRequest", "ResponsibleOrganization", "ResponsiblePerson",
    "PatientInsurancePlanCodeSequence", "CountryOfResidence", "RegionOfResidence", "CurrentPatientLocation",
    "ContentCreatorName", "TextString", "TextComments", "BurnedInAnnotation", "IdentifyingComments",
}
# Free text kept, with the header's identifiers cut out (Clean Descriptors): what the knowledge base indexes.
DESCRIPTORS = ("StudyDescription", "SeriesDescription", "ProtocolName", "BodyPartExamined")
# Sequences kept: they hold no one's identity, and the picture needs them.
KEEP_SEQUENCES = {"ModalityLUTSequence", "VOILUTSequence"}
FREE_TEXT = {"LO", "SH", "ST", "LT", "UT", "UC"}
# The header fields shown and indexed, in this order, with their labels.
SHOWN = (("Modality", "Modality"), ("BodyPartExamined", "Body part"), ("StudyDescription", "Study"),
         ("SeriesDescription", "Series"), ("ProtocolName", "Protocol"), ("StudyDate", "Study date (shifted)"),
         ("ImageType", "Image type"), ("SliceThickness", "Slice thickness"),
         ("PixelSpacing", "Pixel spacing"))


def new_key() -> bytes:
    return secrets.token_bytes(32)


def installation_key(folder: Path) -> bytes:
    """The installation's de-identification secret (``folder/deid.key``, 0600), made on first use; two
    processes making it at once agree on the first one written."""
    path = Path(folder) / "deid.key"
    if path.is_file() and path.stat().st_size >= 32:
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".deid.key.{secrets.token_hex(4)}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as f:
        f.write(new_key())
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(partial, path)  # fails when another process linked its key first
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
    return path.read_bytes()


@dataclass(frozen=True)
class Report:
    """What de-identification did, in words a user can check (attribute names, never their values)."""
    removed: tuple[str, ...] = ()
    pseudonymised: tuple[str, ...] = ()
    uids: int = 0
    dates: int = 0
    private: int = 0
    cleaned: tuple[str, ...] = ()
    text_regions: int = 0

    def summary(self) -> str:
        parts = [f"removed {len(self.removed)} identifying fields"
                 + (f" ({', '.join(self.removed[:8])}{', …' if len(self.removed) > 8 else ''})" if self.removed else "")]
        if self.pseudonymised:
            parts.append(f"replaced {' and '.join(self.pseudonymised)} with a pseudonym")
        if self.dates:
            parts.append(f"shifted {self.dates} dates by this patient's offset")
        if self.uids:
            parts.append(f"replaced {self.uids} UIDs")
        if self.private:
            parts.append(f"dropped {self.private} private tags")
        if self.cleaned:
            parts.append(f"cut identifiers out of {', '.join(self.cleaned)}")
        regions = f"{self.text_regions} text region{'s' if self.text_regions != 1 else ''}"
        parts.append(f"blacked out {regions} in the image" if self.text_regions
                     else "found no text in the image")
        return "De-identified: " + "; ".join(parts) + ". The original file was not kept."


@dataclass
class Scan:
    image: Image  # the chosen frame, windowed to 8 bits, burned-in text blacked out
    frames: int
    frame: int  # which frame (0-based) stands for the series
    header: dict[str, str]  # the cleaned fields of SHOWN that the file has
    report: Report = field(default_factory=Report)

    def text(self) -> str:
        """The cleaned header as searchable text."""
        lines = [f"{label}: {self.header[key]}" for key, label in SHOWN if self.header.get(key)]
        if self.frames > 1:
            lines.append(f"Frames: {self.frames} (frame {self.frame + 1} shown)")
        return "DICOM image\n" + "\n".join(lines)

    @property
    def locator(self) -> str:
        return f"frame {self.frame + 1} of {self.frames}" if self.frames > 1 else "image"


def read(path: Path, key: bytes, *, find_text: Callable[[Image], list] | None = None,
         name: str | None = None, max_pixels: int = 100_000_000) -> Scan:
    """The de-identified scan in the DICOM file at ``path``. ``find_text`` gives the text boxes of an image
    (``retrieval.ocr.text_boxes`` by default). Any problem is an ``UnreadableFileError`` naming the file."""
    import numpy as np
    import pydicom
    from pydicom.errors import InvalidDicomError

    name = name or Path(path).name
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        raise UnreadableFileError(named(name, "not a DICOM file (no DICM marker; it may be damaged, or "
                                              "another kind of file given a .dcm name)")) from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError,
            NotImplementedError, RecursionError, StructError) as exc:
        raise UnreadableFileError(named(name, f"not a readable DICOM file: it is truncated or damaged "
                                              f"({type(exc).__name__})")) from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise UnreadableFileError(named(name, "this DICOM file holds no image: it has no pixel data (a report "
                                              "or another object without pixels, or a file cut short)"))
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if rows <= 0 or columns <= 0:
        raise UnreadableFileError(named(name, "the DICOM header gives the image no size (Rows or Columns "
                                              "missing)"))
    if rows * columns > max_pixels:
        raise UnreadableFileError(named(name, f"the image is {columns}x{rows} pixels, more than the "
                                              f"{max_pixels:,} allowed"))
    burned_in = str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES"
    frame = frames // 2
    try:  # the picture is made from the header as it came (its window, lookup tables, functional groups)
        image = _viewable(ds, np.asarray(_frame(ds, frame, frames)))
    except UnreadableFileError as exc:
        raise UnreadableFileError(named(name, str(exc))) from None
    except (NotImplementedError, RuntimeError):
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        what = getattr(syntax, "name", None) or str(syntax or "an unknown transfer syntax")
        raise UnreadableFileError(named(name, f"its pixels are compressed as {what}, which this server cannot "
                                              f"decode")) from None
    except (ValueError, EOFError, OSError, IndexError, KeyError, TypeError, AttributeError, MemoryError) as exc:
        raise UnreadableFileError(named(name, f"the pixel data is truncated or does not match the header "
                                              f"({type(exc).__name__})")) from None
    report = deidentify(ds, key)
    boxes = (find_text or _default_find_text)(image)
    if burned_in and not boxes:
        raise UnreadableFileError(named(name, "its header says identifying text is burned into the image, and "
                                              "none was found to black out: refused rather than kept as it is"))
    image = blackout(image, boxes)
    report = Report(**{**report.__dict__, "text_regions": len(boxes)})
    header = {key_: _shown(ds, key_) for key_, _ in SHOWN if key_ in ds and _shown(ds, key_)}
    return Scan(image, frames, frame, header, report)


def _default_find_text(image):
    from retrieval.ocr import text_boxes

    return text_boxes(image)


def _shown(ds, keyword: str) -> str:
    value = ds.get(keyword)
    value = getattr(value, "value", value)
    if value is None:
        return ""
    if keyword == "StudyDate" and len(str(value)) == 8:
        text = str(value)
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return " \\ ".join(str(v) for v in value)
    return str(value).strip()


# -- de-identification ----------------------------------------------------------------------------------


def _mac(key: bytes, purpose: str, value: str) -> bytes:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()


def pseudonym(key: bytes, patient: str) -> str:
    return "ANON-" + _mac(key, "patient", patient).hex()[:10].upper()


def date_shift(key: bytes, patient: str) -> int:
    """Days (1 to MAX_DATE_SHIFT_DAYS) this patient's dates move back."""
    return 1 + int.from_bytes(_mac(key, "date", patient)[:4], "big") % MAX_DATE_SHIFT_DAYS


def new_uid(key: bytes, uid: str) -> str:
    return "2.25." + str(int.from_bytes(_mac(key, "uid", uid)[:16], "big"))


_CJK = re.compile(r"[\u3400-\u9fff\uac00-\ud7af\u3040-\u30ff]")
# a date written out in free text: 2024-09-17, 20240917, 17.09.2024, 9/17/24
_DATE = re.compile(r"(?<!\d)(?:(?:19|20)\d{2}[-./]?\d{1,2}[-./]?\d{1,2}|\d{1,2}[-./]\d{1,2}[-./](?:19|20)?\d{2})(?!\d)")


def identifiers(ds) -> list[str]:
    """The header's identifying values as they may reappear in free text or burned-in text: names, their
    parts and their parts joined (``张三`` of ``张^三``), IDs (each of several), the birth date in the usual
    spellings."""
    found: set[str] = set()

    def visit(dataset, element):
        values = [v for v in (element.value if element.VM > 1 else [element.value]) if v not in (None, "")]
        if element.VR == "PN":
            for person in map(str, values):
                found.add(person)
                for group in person.split("="):  # alphabetic, ideographic, phonetic
                    parts = [p for p in re.split(r"[\^\s,]+", group) if p]
                    found.update(p for p in parts if len(p) >= 2 or _CJK.match(p))
                    if len(parts) > 1:
                        found.update({"".join(parts), " ".join(parts), " ".join(reversed(parts)),
                                      "".join(reversed(parts))})
        elif element.keyword in ("PatientID", "OtherPatientIDs", "AccessionNumber", "MedicalRecordLocator",
                                 "IssuerOfPatientID", "StudyID", "InstitutionName"):
            found.update(str(v) for v in values)
        elif element.keyword == "PatientBirthDate" and values:
            d = re.sub(r"\D", "", str(values[0]))
            if len(d) == 8:
                found.update({d, f"{d[:4]}-{d[4:6]}-{d[6:]}", f"{d[6:]}/{d[4:6]}/{d[:4]}",
                              f"{d[4:6]}/{d[6:]}/{d[:4]}", f"{d[6:]}.{d[4:6]}.{d[:4]}", f"{d[:4]}.{d[4:6]}.{d[6:]}"})

    ds.walk(visit)
    return sorted((v for v in found if v.strip()), key=len, reverse=True)


def scrub(text: str, secrets_: list[str]) -> str:
    """``text`` with each of ``secrets_`` cut out, and every date in it: a real date beside a shifted one
    would give the patient's shift away."""
    for value in secrets_:
        text = re.sub(re.escape(value), "[removed]", text, flags=re.I)
    return _DATE.sub("[date]", text)


def deidentify(ds, key: bytes) -> Report:
    """De-identify ``ds`` (a pydicom Dataset) in place; what was done."""
    from pydicom.uid import UID

    found = identifiers(ds)
    # no ID and no name: a key of its own, so that such files share neither a pseudonym nor a date shift
    patient = str(ds.get("PatientID") or "") or str(ds.get("PatientName") or "") or secrets.token_hex(16)
    shift = dt.timedelta(days=date_shift(key, patient))
    removed: list[str] = []
    counts = {"uids": 0, "dates": 0, "private": sum(e.tag.is_private for e in ds.iterall())}
    cleaned: list[str] = []
    ds.remove_private_tags()
    keep_uid = {"SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID", "MediaStorageSOPClassUID",
                "ImplementationClassUID"}

    def drop(dataset, element) -> None:
        removed.append(element.keyword or str(element.tag))
        del dataset[element.tag]

    def clean(dataset) -> None:
        for element in list(dataset):
            keyword, vr = element.keyword, element.VR
            if keyword == "PatientName":
                continue  # replaced below, once
            if ((element.tag.group & 0xFF00) in (0x6000, 0x5000) or keyword in REMOVE or vr in ("PN", "AS", "UN")
                    or (vr == "SQ" and keyword not in KEEP_SEQUENCES)
                    or (vr in FREE_TEXT and keyword not in DESCRIPTORS)):
                drop(dataset, element)
            elif vr == "SQ":
                for item in element.value:
                    clean(item)
            elif vr == "UI":
                if keyword in keep_uid or not element.value:
                    continue
                values = element.value if element.VM > 1 else [element.value]
                if all(UID(str(v)).is_valid and UID(str(v)).name != str(v) for v in values):
                    continue  # a class or syntax UID of the standard: it names no one
                fresh = [new_uid(key, str(v)) for v in values]
                element.value = fresh if element.VM > 1 else fresh[0]
                counts["uids"] += len(fresh)
            elif vr in ("DA", "DT"):
                if element.value:
                    element.value = _shifted(element.value, shift, vr)
                    counts["dates"] += 1
            elif vr in FREE_TEXT:  # a descriptor: kept, with the identifiers and dates cut out
                before = str(element.value or "")
                after = scrub(before, found)
                if after != before:
                    element.value = after
                    cleaned.append(keyword)

    clean(ds)
    pseudonymised = []
    if "PatientName" in ds or "PatientID" in removed:
        ds.PatientName = pseudonym(key, patient)
        ds.PatientID = pseudonym(key, patient)
        pseudonymised = ["the patient's name", "ID"]
    if getattr(ds, "file_meta", None) is not None and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID") or new_uid(
            key, str(ds.file_meta.MediaStorageSOPInstanceUID))
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    return Report(tuple(dict.fromkeys(r for r in removed if r)), tuple(pseudonymised), counts["uids"],
                  counts["dates"], counts["private"], tuple(dict.fromkeys(cleaned)))


def _shifted(value, shift: dt.timedelta, vr: str):
    def one(text: str) -> str:
        text = str(text)
        try:
            day = dt.datetime.strptime(text[:8], "%Y%m%d") - shift
        except ValueError:
            return ""  # not a date we can move: removed rather than kept
        return day.strftime("%Y%m%d") + (text[8:] if vr == "DT" else "")

    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [one(v) for v in value]
    return one(value)


# -- pixels ----------------------------------------------------------------------------------------------


def _frame(ds, index: int, frames: int):
    """One frame's pixels, decoded alone (not the whole series); colour (YBR) comes back as RGB."""
    from pydicom.pixels import pixel_array

    return pixel_array(ds, index=index if frames > 1 else None)


def _viewable(ds, pixels) -> Image:
    """8-bit picture of one frame: the modality LUT (rescale to Hounsfield units and the like), then the
    header's window (linear, PS3.3 C.11.2.1.2) or VOI LUT, else the range between the 0.5th and 99.5th
    percentiles; MONOCHROME1 inverted; colour as RGB."""
    import numpy as np
    from PIL import Image as PILImage
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR" and pixels.ndim == 2:
        from pydicom.pixels import apply_color_lut

        pixels = apply_color_lut(pixels, ds)
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        if pixels.dtype == np.uint8:
            return PILImage.fromarray(pixels, "RGB")  # colours as recorded (a Doppler's scale stays true)
        return PILImage.fromarray(_to_8bit(np.asarray(pixels, dtype=np.float64), spread=(0, 100)), "RGB")
    if pixels.ndim != 2:
        raise UnreadableFileError(f"the image has a shape ({'x'.join(map(str, pixels.shape))}) this server "
                                  "cannot show")
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    window = _window(ds)
    if window is not None:
        low, high = window
        gray = np.clip((values - low) * (255.0 / (high - low)), 0, 255).astype(np.uint8)
    elif "VOILUTSequence" in ds:
        try:
            gray = _to_8bit(np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64), spread=(0, 100))
        except (ValueError, TypeError, IndexError, KeyError, AttributeError):
            gray = _to_8bit(values)  # an unusable lookup table: the percentile range shows the image instead
    else:
        gray = _to_8bit(values)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        gray = 255 - gray
    return PILImage.fromarray(gray, "L").convert("RGB")


def _window(ds) -> tuple[float, float] | None:
    """The first window of the header as (lowest, highest) value shown, when it has a usable one."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None or str(ds.get("VOILUTFunction", "LINEAR")).upper() == "SIGMOID":
        return None
    try:
        center = float(center[0] if type(center).__name__ == "MultiValue" else center)
        width = float(width[0] if type(width).__name__ == "MultiValue" else width)
    except (TypeError, ValueError, IndexError):
        return None
    if not (width > 1 and abs(center) < 1e9 and width < 1e9):
        return None
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2


def _to_8bit(values, spread: tuple[float, float] = (0.5, 99.5)):
    import numpy as np

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = np.percentile(finite, list(spread))
    if high <= low:
        low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def blackout(image: Image, boxes, margin: int = 3) -> Image:
    """The image with each box (left, top, right, bottom) painted black, a few pixels wider all round."""
    if not boxes:
        return image
    from PIL import ImageDraw

    image = image.copy()
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for left, top, right, bottom in boxes:
        draw.rectangle((max(0, left - margin), max(0, top - margin), min(width - 1, right + margin),
                        min(height - 1, bottom + margin)), fill=0)
    return image
