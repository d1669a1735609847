"""What the tabs share: the page (models, stop flags, the model selector), jobs, inputs, files and wording.

Plain functions and small classes; only the event helpers touch gradio.
"""

from __future__ import annotations

import functools
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from .. import RESEARCH_ONLY_NOTICE, __version__
from ..data import DatasetError, load_labelled
from ..engines import Interrupted
from ..engines.audit import AuditImage, folder_images
from ..engines.common import Progress, ShouldStop
from ..io import MedicalImage, read_image
from ..models import ModelLoadError
from .session import ModelRegistry, StopFlags, exports_root

BANNER = (f"**medviz {__version__}** · ⚠️ {RESEARCH_ONLY_NOTICE.capitalize()}. Images here are synthetic or "
          "edited; never use them for clinical decisions.")
MODEL_JOBS = "model"          # concurrency id shared by every event that runs the model
EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "examples" / "inputs"
UPLOAD_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm"]
MAX_UPLOADS = 200             # images per audit or stress test


@dataclass(frozen=True)
class Page:
    """What every tab's events need: the loaded models, the stop flags and the model selector."""

    registry: ModelRegistry
    stops: StopFlags
    model_name: gr.Dropdown


@dataclass(frozen=True)
class Job:
    """One run's session (for its files), progress report and interrupt check. ``run_id``: in every file name
    the run writes, so that a download link never serves another run's result."""

    session: str
    progress: Progress = None
    should_stop: ShouldStop = None
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def folder(self) -> Path:
        return session_folder(self.session)

    def file(self, stem: str, suffix: str) -> Path:
        """``<session folder>/<stem>-<run id><suffix>``."""
        return self.folder / f"{stem}-{self.run_id}{suffix}"


def start_job(page: Page, request: gr.Request, progress: gr.Progress, what: str) -> Job:
    """Arm the session's Stop flag and report progress as ``what`` ("denoising", "trials")."""
    session = request.session_hash or "anonymous"
    return Job(session, lambda done, total: progress((done, total), desc=what), page.stops.arm(session))


def take_upload(path: str | None) -> bytes | None:
    """The uploaded file's bytes; the file (and its name) leaves the server's cache at once."""
    if not path:
        return None
    upload = Path(path)
    try:
        return upload.read_bytes()
    finally:
        if Path(get_upload_folder()).resolve() in upload.resolve().parents:     # never a file outside gradio's cache
            forget_file(upload)


def read_uploads(uploads, domain: str | None, size: int) -> tuple[list[AuditImage], list[str]]:
    """(images, notes) of a set of uploaded files: a CSV among them in the domain's public layout (CheXpert, ISIC)
    gives the images it names their labels. The files leave the server at once; a bad file is named, not fatal."""
    if len(uploads) > MAX_UPLOADS:
        raise ValueError(f"at most {MAX_UPLOADS} images at a time; got {len(uploads)}")
    folder = Path(tempfile.mkdtemp(prefix="medviz-uploads-"))
    try:
        for path in uploads:
            (folder / Path(path).name).write_bytes(take_upload(path) or b"")
        return _read_folder(folder, domain, size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _read_folder(folder: Path, domain: str | None, size: int) -> tuple[list[AuditImage], list[str]]:
    csvs = sorted(folder.glob("*.csv"))
    if csvs:
        try:
            records = load_labelled(domain, csvs[0], image_root=folder, check_files=False)
        except DatasetError as error:
            raise ValueError(str(error).replace(str(folder) + "/", "")) from None
        records = [r for r in records if r.path.is_file()]
        images, unreadable = folder_images(records, max_side=size)
        notes = [f"Labels from {csvs[0].name} for {len(images)} images."] if images else []
        return images, notes + [f"Unreadable, left out: {line}" for line in unreadable]
    images, notes = [], []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() != ".csv"):
        try:
            images.append(AuditImage(path.name, read_image(path, max_side=size).pixels))
        except ValueError as error:
            notes.append(f"Unreadable, left out: {path.name}: {error}")
    return images, notes


def forget_file(path: Path) -> None:
    """Delete a cached file and its folder when that is left empty (gradio caches each file in its own)."""
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def errors_as_messages(function: Callable) -> Callable:
    """Show engine and input errors as a Gradio error toast instead of a stack trace."""

    @functools.wraps(function)        # keeps the signature: Gradio injects gr.Request / gr.Progress by it
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Interrupted as error:
            raise gr.Error(f"Stopped: {error}") from None
        except (ValueError, ModelLoadError) as error:
            raise gr.Error(str(error)) from None

    return wrapper


def pre_run_line(page: Page, line: Callable, shown: gr.Markdown, controls: dict, api_name: str) -> Callable:
    """Wire the line above a run button, ``line(model, **values)`` of ``controls`` (no model call): it follows the
    controls' changes (endpoint ``api_name``) and, once a model change has set the controls to that model's
    defaults, the model (the returned ``after_model`` hook; run alongside the change, it could show the figures
    for the controls' old values). '' while the model fails to load: the model selector's own event says why."""

    def adapter(model_name, **values):
        try:
            model = page.registry.get(model_name)
        except ModelLoadError:
            return ""
        return line(model, **values)

    quietly = dict(queue=False, show_progress="hidden")
    gr.on([c.change for c in controls.values()], adapter, [page.model_name], shown, inputs_kwargs=controls,
          api_name=api_name, **quietly)
    return lambda event: event.then(
        adapter, [page.model_name], shown, inputs_kwargs=controls, api_name=False, **quietly
    )


def session_folder(session: str) -> Path:
    """A private folder for this session's exports, inside Gradio's (private) temp dir."""
    folder = exports_root() / "".join(c for c in session if c.isalnum())[:64]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def example_images(domain: str | None = None) -> list[str]:
    """Bundled example inputs (phantoms) for a domain: file names under assets/examples/inputs."""
    if not EXAMPLES_DIR.is_dir():
        return []
    return sorted(p.name for p in EXAMPLES_DIR.iterdir()
                  if p.suffix in (".png", ".dcm") and (domain is None or p.name.startswith(domain)))


def load_input(upload: bytes | None, example: str | None, size: int,
               window: tuple[float, float] | None = None) -> MedicalImage:
    """The image to work on, in the I/O contract, reduced to at most ``size`` px (the model's working size): an
    upload's bytes (PNG/JPEG/TIFF/DICOM, ``take_upload``) win over an example.

    ``window``: DICOM only, (center, width) in modality units instead of the file's own VOI.
    Raises ``ImageReadError`` (a ``ValueError``) with a one-sentence message for a bad file.
    """
    if upload:
        return read_image(upload, window=window, max_side=size)
    if example:
        if example not in example_images():
            raise ValueError(f"unknown example {example!r}")
        return read_image(EXAMPLES_DIR / example, window=window, max_side=size)
    raise ValueError("upload an image (PNG, JPEG, TIFF or DICOM) or pick an example")


def input_summary(image: MedicalImage) -> str:
    """'DICOM, 512×512 → 128×128, uint16; window center 40, width 400' (markdown, no file name)."""
    info = image.info
    stored = f"{info.original_shape[1]}×{info.original_shape[0]}"
    size = f"{image.size[0]}×{image.size[1]}"
    text = f"{info.source_format}, {stored}" + (f" → {size} (the model's working size)" if stored != size else "")
    text += f", {info.original_dtype}"
    if info.window is not None:
        text += f"; window center {info.window[0]:g}, width {info.window[1]:g}"
    if info.inverted:
        text += "; MONOCHROME1 inverted for display"
    return text


def read_input(page: Page, model_name: str | None, source: dict,
               window: tuple[float, float] | None = None) -> tuple[MedicalImage | None, str]:
    """(the image, its info line: 'Upload: …' or 'Example *name*: …') of ``source`` ({"upload": bytes} or
    {"example": name}) at the model's working size; a file that cannot be read gives (None, why) and a warning
    toast, never an earlier image."""
    try:
        image = load_input(source.get("upload"), source.get("example"), page.registry.get(model_name).image_size,
                           window)
    except (ValueError, ModelLoadError) as error:
        gr.Warning(f"No image loaded: {error}")
        return None, f"⚠ **No image loaded:** {error}"
    origin = "Upload" if source.get("upload") else f"Example *{source['example']}*"
    return image, f"{origin}: {input_summary(image)}"


NO_IMAGE = "load an image first: upload a PNG, JPEG, TIFF or DICOM, or pick an example"


def image_input(tab: str, domain: str | None) -> tuple[gr.File, gr.Dropdown]:
    """An upload box (PNG, JPEG, TIFF, DICOM) and a bundled-example picker; the last one used is the input."""
    upload = gr.File(label="Upload PNG, JPEG, TIFF or DICOM (read into memory, then deleted from the server)",
                     file_types=UPLOAD_TYPES, type="filepath", elem_id=f"{tab}-upload")
    examples = example_images(domain)
    example = gr.Dropdown(examples, value=first_example(examples, tab), label="…or a bundled example (phantom)")
    return upload, example


def first_example(examples: list[str], tab: str) -> str | None:
    """The example a tab starts on: the first PNG (Edit: the first one with something to remove)."""
    return next((e for e in examples if e.endswith(".png") and (tab != "edit" or "clear" not in e)), None)


def unmeasured_settings(differences: dict, shown: Callable = str) -> str:
    """' This run's settings differ and were not measured: steps 50 (measured at 25), ...' for a bench record's
    ``differences`` ({setting: (measured at, this run)}, ``medviz.engines.common.setting_differences``), each
    value written by ``shown``; '' when there are none."""
    if not differences:
        return ""
    changed = ", ".join(f"{name.replace('_', ' ')} {shown(mine)} (measured at {shown(theirs)})"
                        for name, (theirs, mine) in differences.items())
    return f" This run's settings differ and were not measured: {changed}."


#: The Generate and Traverse tabs' preview box (``medviz.backends``): never offered where an exact answer is needed.
PREVIEW_LABEL = "Preview: faster, approximate (bfloat16 on a CPU with AMX); the result says so"


def warned(warnings, text: str) -> str:
    """``text`` after the engine's warnings, in bold with a ⚠ ('' warnings: ``text`` alone)."""
    if not warnings:
        return text
    return "⚠ **" + " ".join(warnings) + "**  \n" + text


def outside(check) -> bool:
    """True when a result's domain check (``medviz.guard.DomainCheck`` or None) says the image is out of domain."""
    return check is not None and check.in_domain is False


def domain_banner(check) -> str:
    """Markdown above a result: a prominent warning for an image outside the model's domain, a note for a model
    without a domain check, '' otherwise (in domain, or not checked)."""
    if check is None or check.in_domain:
        return ""
    if check.in_domain is None:
        return f"ℹ️ *{check.warning}*  \n"
    return (
        f"### ⚠️ Outside this model's domain\n**{check.warning}** You may still proceed; treat the result as such.\n\n"
    )


def number(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"
