"""OCR with Tesseract, offline: the ``tesseract`` provider (kind ``ocr``).

Tesseract is Debian's ``tesseract-ocr`` (``./run`` installs it), driven through
``pytesseract``, the well-kept wrapper that runs the binary on one image at a time.
Input is ``request.document`` (a path) or ``request.data`` (the file's bytes, raw or
base64-encoded): an image Pillow reads (PNG, JPEG, TIFF with all its frames, ...) or a PDF,
whose pages are rendered with ``pypdfium2`` (PDFium from a PyPI wheel: nothing more to
install, unlike poppler's ``pdftoppm``, and no temporary page files to clean up).

The output is the text, pages separated by a form feed (``\\f``), as tesseract and pdftotext
separate them. Usage: ``seconds`` is the time spent rendering and recognizing (cards price
OCR ``per_second``), ``output_tokens`` the text's token count, ``input_tokens`` 0.

Card options: ``lang`` (default ``"eng"``; ``"eng+deu"`` for several; a request's
``params["lang"]`` overrides it), ``dpi`` for rendering PDF pages (default 300, what
Tesseract reads best), ``config`` (extra tesseract arguments, e.g. ``"--psm 6"``).

Errors: no ``tesseract`` binary, or no data for the language, is a ``ConfigError`` that names
the Debian package to install; a missing or unreadable input is ``ProviderRejected`` naming
it; a page that runs past the card's timeout is ``ProviderUnavailable``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, ProviderRejected, ProviderUnavailable
from ..catalog import ModelCard
from ..tokens import count_tokens
from ..types import Kind, ModelRequest, ProviderResult, Usage

if TYPE_CHECKING:
    from PIL.Image import Image

INSTALL = "apt-get install tesseract-ocr"
_LANG = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")
_FAILED_LANG = re.compile(r"Failed loading language '([^']+)'")
_PAGE_SEPARATOR = "\f"


@dataclass(frozen=True, slots=True)
class _Job:
    card: ModelCard
    name: str  # the path, or "request data", for messages
    path: Path | None
    data: bytes | None
    lang: str
    dpi: float
    config: str
    deadline: float  # time.monotonic() after which a page is not started


class TesseractProvider:
    """Tesseract OCR on images and PDFs; blocking work runs in a worker thread."""

    name = "tesseract"
    kinds: frozenset[Kind] = frozenset({"ocr"})

    def __init__(self) -> None:
        self._binary: str | None = None

    async def invoke(self, card: ModelCard, request: ModelRequest) -> ProviderResult:
        if request.kind != "ocr":
            raise ProviderRejected(
                f"{card.key}: the tesseract provider serves ocr, not {request.kind}"
            )
        self._check_binary(card)
        job = _job(card, request)
        started = time.perf_counter()
        text, pages = await asyncio.to_thread(_recognize, job)
        seconds = time.perf_counter() - started
        return ProviderResult(
            output=text,
            usage=Usage(input_tokens=0, output_tokens=count_tokens(text), seconds=seconds),
            provider_model="tesseract",
            raw={"pages": pages, "lang": job.lang},
        )

    async def close(self) -> None:
        return None

    def _check_binary(self, card: ModelCard) -> None:
        if self._binary is None:
            found = shutil.which("tesseract")
            if found is None:
                raise ConfigError(
                    f"{card.key}: Tesseract OCR is not installed (no `tesseract` on PATH); "
                    f"install it with: {INSTALL}"
                )
            self._binary = found


def _job(card: ModelCard, request: ModelRequest) -> _Job:
    from_request = "lang" in request.params
    lang = request.params["lang"] if from_request else card.options.get("lang", "eng")
    if not isinstance(lang, str) or not _LANG.match(lang):
        where, error = ("params", ProviderRejected) if from_request else ("options", ConfigError)
        raise error(
            f"{card.key}: OCR language ({where}.lang) must look like 'eng' or 'eng+deu', "
            f"got {lang!r}"
        )
    dpi = card.options.get("dpi", 300)
    if isinstance(dpi, bool) or not isinstance(dpi, int | float) or not 36 <= dpi <= 1200:
        raise ConfigError(f"{card.key}: options.dpi must be a number from 36 to 1200, got {dpi!r}")
    config = card.options.get("config", "")
    if not isinstance(config, str):
        raise ConfigError(f"{card.key}: options.config must be a string, got {config!r}")
    path: Path | None = None
    data: bytes | None = None
    if request.document is not None:
        path = Path(request.document).expanduser()
        if not path.exists():
            raise ProviderRejected(f"{card.key}: OCR input {path} does not exist")
        if not path.is_file():
            raise ProviderRejected(f"{card.key}: OCR input {path} is not a file")
    elif request.data:
        data = _decoded(request.data)
    else:
        raise ProviderRejected(
            f"{card.key}: an ocr request needs document (a path) or data (the file's bytes)"
        )
    return _Job(
        card=card,
        name=str(path) if path is not None else "request data",
        path=path,
        data=data,
        lang=lang,
        dpi=float(dpi),
        config=config,
        deadline=time.monotonic() + card.timeout,
    )


def _decoded(data: bytes) -> bytes:
    """Raw bytes as they are; base64 text decoded. Image and PDF files start with bytes
    outside the base64 alphabet (``\\x89PNG``, ``\\xff\\xd8``, ``II*\\x00``, ``%PDF``), so a
    strict decode succeeds only on base64 text."""
    compact = b"".join(data.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return data


def _recognize(job: _Job) -> tuple[str, int]:
    """Render and recognize every page (in a worker thread): the text and the page count."""
    try:
        import pytesseract
    except ImportError as exc:
        raise ConfigError(
            f"{job.card.key}: pytesseract is not installed: pip install 'aiosys[offline]'"
        ) from exc
    texts: list[str] = []
    for number, page in enumerate(_pages(job), start=1):
        remaining = job.deadline - time.monotonic()
        if remaining <= 0:
            raise ProviderUnavailable(
                f"{job.card.key}: OCR of {job.name} ran past the {job.card.timeout}s timeout "
                f"before page {number}"
            )
        try:
            text = pytesseract.image_to_string(
                page, lang=job.lang, config=job.config, timeout=max(1, int(remaining + 0.999))
            )
        except pytesseract.TesseractNotFoundError as exc:
            raise ConfigError(
                f"{job.card.key}: Tesseract OCR is not installed; install it with: {INSTALL}"
            ) from exc
        except pytesseract.TesseractError as exc:
            raise _tesseract_error(job, number, exc) from exc
        except RuntimeError as exc:  # pytesseract's "Tesseract process timeout"
            raise ProviderUnavailable(
                f"{job.card.key}: OCR of page {number} of {job.name} timed out ({exc})"
            ) from exc
        texts.append(text.strip())
    return _PAGE_SEPARATOR.join(texts), len(texts)


def _tesseract_error(job: _Job, number: int, exc: Any) -> Exception:
    message = str(getattr(exc, "message", exc))
    missing = _FAILED_LANG.search(message)
    if missing:
        package = "tesseract-ocr-" + missing.group(1).lower().replace("_", "-")
        return ConfigError(
            f"{job.card.key}: Tesseract has no data for language {missing.group(1)!r}; "
            f"install it with: apt-get install {package}"
        )
    return ProviderRejected(
        f"{job.card.key}: tesseract failed on page {number} of {job.name}: {message}"
    )


def _pages(job: _Job) -> Iterator[Image]:
    """The input's pages as Pillow images, rendered one at a time."""
    try:
        from PIL import Image, ImageSequence
    except ImportError as exc:
        raise ConfigError(
            f"{job.card.key}: Pillow is not installed: pip install 'aiosys[offline]'"
        ) from exc
    head = _head(job)
    if b"%PDF-" in head:
        yield from _pdf_pages(job)
        return
    source = job.path if job.path is not None else io.BytesIO(job.data or b"")
    try:
        with Image.open(source) as image:
            for frame in ImageSequence.Iterator(image):
                # A copy or conversion drops the file's format, so pytesseract hands every
                # page to tesseract as PNG whatever format the file was (ICO, PSD, ...).
                if frame.mode in ("1", "L", "RGB", "RGBA"):
                    yield frame.copy()
                else:
                    yield frame.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderRejected(
            f"{job.card.key}: OCR input {job.name} is not a readable image or PDF: {exc}"
        ) from exc


def _head(job: _Job) -> bytes:
    if job.path is None:
        return (job.data or b"")[:1024]
    try:
        with job.path.open("rb") as file:
            return file.read(1024)
    except OSError as exc:
        raise ProviderRejected(f"{job.card.key}: cannot read OCR input {job.name}: {exc}") from exc


def _pdf_pages(job: _Job) -> Iterator[Image]:
    try:
        import pypdfium2
    except ImportError as exc:
        raise ConfigError(
            f"{job.card.key}: pypdfium2 is not installed: pip install 'aiosys[offline]'"
        ) from exc
    try:
        pdf = pypdfium2.PdfDocument(str(job.path) if job.path is not None else job.data)
    except pypdfium2.PdfiumError as exc:
        raise ProviderRejected(
            f"{job.card.key}: OCR input {job.name} is not a readable PDF: {exc}"
        ) from exc
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                bitmap = page.render(scale=job.dpi / 72)
                image: Image = bitmap.to_pil()
            finally:
                page.close()
            yield image
    except pypdfium2.PdfiumError as exc:
        raise ProviderRejected(
            f"{job.card.key}: cannot render page of PDF {job.name}: {exc}"
        ) from exc
    finally:
        pdf.close()
