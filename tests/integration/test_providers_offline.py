"""The offline providers, run for real: Tesseract on a page the test draws, the packaged
all-MiniLM-L6-v2, the centroid summarizer and Python callables as models.

OCR tests need Debian's ``tesseract-ocr`` (``./run`` installs it): without it they skip,
saying how to install it, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import base64
import io
import math
import os
import shutil
import textwrap
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from aiosys.errors import ConfigError, ProviderRejected, ProviderUnavailable
from aiosys.models.catalog import ModelCard, Pricing
from aiosys.models.providers.base import Provider
from aiosys.models.providers.embeddings import EmbeddingsProvider
from aiosys.models.providers.local import LocalProvider, register_callable, unregister_callable
from aiosys.models.providers.summarizer import ExtractiveSummarizer
from aiosys.models.providers.tesseract import TesseractProvider
from aiosys.models.tokens import count_tokens, estimate_request_tokens
from aiosys.models.types import Message, ModelRequest, ProviderResult, Usage

PAGE_ONE = ["INVOICE 4471", "Acme Corporation paid", "twelve hundred dollars"]
PAGE_TWO = ["Second page", "signed by Maria Lopez"]


def test_every_offline_provider_fits_the_provider_protocol() -> None:
    for provider in (
        LocalProvider(),
        TesseractProvider(),
        EmbeddingsProvider(),
        ExtractiveSummarizer(),
    ):
        assert isinstance(provider, Provider)


# --- Tesseract OCR ------------------------------------------------------------------------


@pytest.fixture
def tesseract() -> TesseractProvider:
    if shutil.which("tesseract") is None:
        message = "Tesseract is not installed: ./run installs it, or apt-get install tesseract-ocr"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return TesseractProvider()


def ocr_card(**options: object) -> ModelCard:
    return ModelCard(
        id="tesseract-eng",
        kind="ocr",
        provider="tesseract",
        pricing=Pricing(per_second=0.01),
        options=dict(options),
    )


def scanned_page(lines: list[str]) -> Image.Image:
    """A white page with black text in a large font, as a scanner would give it."""
    font = ImageFont.load_default(size=64)  # Pillow >= 10.1 bundles a scalable font
    page = Image.new("L", (1400, 120 + 110 * len(lines)), 255)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((60, 50 + i * 110), line, fill=0, font=font)
    return page


def words(text: str) -> list[str]:
    return text.split()


async def test_ocr_reads_the_words_of_a_scanned_png(
    tesseract: TesseractProvider, tmp_path: Path
) -> None:
    path = tmp_path / "page.png"
    scanned_page(PAGE_ONE).save(path)

    result = await tesseract.invoke(ocr_card(), ModelRequest(kind="ocr", document=str(path)))

    assert words(result.output) == words(" ".join(PAGE_ONE))
    assert result.raw == {"pages": 1, "lang": "eng"}
    assert result.usage.input_tokens == 0
    assert result.usage.output_tokens == count_tokens(result.output) > 0
    assert result.usage.seconds > 0
    assert ocr_card().pricing.cost(0, 0, result.usage.seconds) == pytest.approx(
        result.usage.seconds * 0.01
    )


async def test_ocr_reads_every_page_of_a_pdf_in_order(
    tesseract: TesseractProvider, tmp_path: Path
) -> None:
    path = tmp_path / "scan.pdf"
    first, second = scanned_page(PAGE_ONE), scanned_page(PAGE_TWO)
    first.save(path, save_all=True, append_images=[second], resolution=150)

    result = await tesseract.invoke(ocr_card(), ModelRequest(kind="ocr", document=str(path)))

    pages = result.output.split("\f")
    assert [words(p) for p in pages] == [words(" ".join(PAGE_ONE)), words(" ".join(PAGE_TWO))]
    assert result.raw["pages"] == 2


async def test_ocr_reads_file_bytes_raw_or_base64(tesseract: TesseractProvider) -> None:
    buffer = io.BytesIO()
    scanned_page(PAGE_TWO).save(buffer, format="PDF", resolution=150)
    pdf = buffer.getvalue()
    buffer = io.BytesIO()
    scanned_page(PAGE_ONE).save(buffer, format="TIFF")
    tiff = buffer.getvalue()

    from_pdf = await tesseract.invoke(ocr_card(), ModelRequest(kind="ocr", data=pdf))
    from_base64 = await tesseract.invoke(
        ocr_card(), ModelRequest(kind="ocr", data=base64.b64encode(tiff))
    )

    assert words(from_pdf.output) == words(" ".join(PAGE_TWO))
    assert words(from_base64.output) == words(" ".join(PAGE_ONE))


async def test_ocr_of_a_missing_file_is_rejected_naming_it(
    tesseract: TesseractProvider, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "scan.pdf"
    with pytest.raises(ProviderRejected, match=rf"tesseract-eng@1: OCR input {missing} does not"):
        await tesseract.invoke(ocr_card(), ModelRequest(kind="ocr", document=str(missing)))


async def test_ocr_of_a_file_that_is_no_image_is_rejected(
    tesseract: TesseractProvider, tmp_path: Path
) -> None:
    path = tmp_path / "notes.png"
    path.write_text("just some text, not a picture\n")
    with pytest.raises(ProviderRejected, match=r"notes\.png is not a readable image or PDF"):
        await tesseract.invoke(ocr_card(), ModelRequest(kind="ocr", document=str(path)))
    broken_pdf = tmp_path / "broken.pdf"
    broken_pdf.write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    with pytest.raises(ProviderRejected, match=r"broken\.pdf is not a readable PDF"):
        await tesseract.invoke(ocr_card(), ModelRequest(kind="ocr", document=str(broken_pdf)))


async def test_ocr_without_any_input_is_rejected(tesseract: TesseractProvider) -> None:
    with pytest.raises(ProviderRejected, match="needs document"):
        await tesseract.invoke(ocr_card(), ModelRequest(kind="ocr"))


async def test_ocr_in_a_language_without_data_names_the_package_to_install(
    tesseract: TesseractProvider, tmp_path: Path
) -> None:
    path = tmp_path / "page.png"
    scanned_page(PAGE_TWO).save(path)
    with pytest.raises(ConfigError, match="apt-get install tesseract-ocr-zzz"):
        await tesseract.invoke(ocr_card(lang="zzz"), ModelRequest(kind="ocr", document=str(path)))


async def test_ocr_without_the_tesseract_binary_is_a_config_error_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no tesseract on it
    with pytest.raises(ConfigError, match=r"install it with: apt-get install tesseract-ocr$"):
        await TesseractProvider().invoke(
            ocr_card(), ModelRequest(kind="ocr", document=str(tmp_path / "x.png"))
        )


async def test_tesseract_refuses_other_kinds() -> None:
    with pytest.raises(ProviderRejected, match="serves ocr, not chat"):
        await TesseractProvider().invoke(ocr_card(), ModelRequest(kind="chat"))


# --- Embeddings (the packaged all-MiniLM-L6-v2) --------------------------------------------


def embed_card(**fields: object) -> ModelCard:
    return ModelCard(id="minilm", kind="embed", provider="embeddings", **fields)  # type: ignore[arg-type]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_similar_sentences_embed_closer_than_unrelated_ones() -> None:
    texts = [
        "The invoice was paid by bank transfer on Monday.",
        "Payment for the bill arrived by wire transfer at the start of the week.",
        "Penguins huddle together to survive the Antarctic winter.",
    ]
    result = await EmbeddingsProvider().invoke(
        embed_card(), ModelRequest(kind="embed", texts=texts)
    )

    vectors = result.output
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(math.sqrt(cosine(v, v)), 1.0, abs_tol=1e-5) for v in vectors)
    similar, unrelated = cosine(vectors[0], vectors[1]), cosine(vectors[0], vectors[2])
    assert similar > unrelated + 0.3, (similar, unrelated)
    assert result.provider_model == "sentence-transformers/all-MiniLM-L6-v2"
    # Word pieces the model read, with [CLS] and [SEP] around each text.
    assert result.usage.input_tokens >= sum(len(t.split()) + 2 for t in texts)
    assert result.usage.output_tokens == 0


async def test_embedding_tokens_are_the_tokenizers_count() -> None:
    result = await EmbeddingsProvider().invoke(
        embed_card(), ModelRequest(kind="embed", texts=["hello world", "a cat sat on the mat"])
    )
    # BERT's uncased word pieces: [CLS] hello world [SEP]; [CLS] a cat sat on the mat [SEP].
    assert result.usage.input_tokens == 4 + 8


async def test_the_same_text_embeds_the_same_in_any_batch() -> None:
    provider = EmbeddingsProvider()
    alone = await provider.embed(["Quarterly revenue grew by four percent."])
    batched = await provider.embed(
        ["Something else entirely.", "Quarterly revenue grew by four percent."]
    )
    assert cosine(alone[0], batched[1]) == pytest.approx(1.0, abs=1e-5)


async def test_embedding_no_texts_returns_no_vectors() -> None:
    result = await EmbeddingsProvider().invoke(embed_card(), ModelRequest(kind="embed"))
    assert result.output == []


async def test_an_embedding_model_that_is_not_on_disk_is_a_config_error(tmp_path: Path) -> None:
    card = embed_card(provider_model="sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(ConfigError, match="models are never downloaded"):
        await EmbeddingsProvider().invoke(card, ModelRequest(kind="embed", texts=["x"]))


# --- Extractive summarizer ------------------------------------------------------------------

REPORT = textwrap.dedent(
    """\
    The city council approved a new solar energy plan for public buildings on Tuesday.
    The weather was unusually warm for the season.
    Under the plan, solar panels will cover the roofs of schools, libraries and the city hall.
    Several residents brought their dogs to the meeting.
    Officials expect the solar panels to supply half of the energy the buildings use.
    The meeting ended shortly after nine o'clock."""
)
TOPIC = [0, 2, 4]  # the sentences about the solar energy plan


async def test_summary_picks_the_main_topic_sentences_in_their_original_order() -> None:
    sentences = REPORT.split("\n")
    result = await ExtractiveSummarizer().invoke(
        ModelCard(id="summ", kind="summarize", provider="summarizer"),
        ModelRequest(kind="summarize", text=REPORT),
    )

    assert result.output == " ".join(sentences[i] for i in TOPIC)
    assert result.usage.input_tokens == count_tokens(REPORT)
    assert result.usage.output_tokens == count_tokens(result.output)


async def test_summary_length_follows_the_request_then_the_card() -> None:
    sentences = REPORT.split("\n")
    card = ModelCard(id="summ", kind="summarize", provider="summarizer", options={"sentences": 1})
    summarizer = ExtractiveSummarizer()

    one = await summarizer.invoke(card, ModelRequest(kind="summarize", text=REPORT))
    two = await summarizer.invoke(
        card, ModelRequest(kind="summarize", text=REPORT, params={"sentences": 2})
    )
    everything = await summarizer.invoke(
        card, ModelRequest(kind="summarize", text=REPORT, params={"sentences": 10})
    )

    assert one.output in [sentences[i] for i in TOPIC]
    chosen = [s for s in sentences if s in two.output]
    assert len(chosen) == 2 and all(sentences.index(s) in TOPIC for s in chosen)
    assert two.output == " ".join(chosen)
    assert everything.output == " ".join(sentences)


async def test_summarizer_rejects_an_empty_text_and_a_bad_length() -> None:
    card = ModelCard(id="summ", kind="summarize", provider="summarizer")
    summarizer = ExtractiveSummarizer()
    with pytest.raises(ProviderRejected, match="needs a non-empty text"):
        await summarizer.invoke(card, ModelRequest(kind="summarize", text="  \n"))
    with pytest.raises(ProviderRejected, match=r"params.sentences must be a positive integer"):
        await summarizer.invoke(
            card, ModelRequest(kind="summarize", text=REPORT, params={"sentences": 0})
        )
    bad_card = card.model_copy(update={"options": {"sentences": "three"}})
    with pytest.raises(ConfigError, match=r"options.sentences must be a positive integer"):
        await summarizer.invoke(bad_card, ModelRequest(kind="summarize", text=REPORT))


# --- Local Python callables -----------------------------------------------------------------


def local_card(kind: str = "chat", **options: object) -> ModelCard:
    return ModelCard(id="echo", kind=kind, provider="local", options=dict(options))  # type: ignore[arg-type]


@pytest.fixture
def registered() -> list[str]:
    names: list[str] = []
    yield names
    for name in names:
        unregister_callable(name)


async def test_a_registered_sync_callable_answers_and_its_usage_is_counted(
    registered: list[str],
) -> None:
    def shout(messages: list[Message]) -> str:
        return messages[-1].content.upper() + "!"

    register_callable("shout", shout)
    registered.append("shout")
    request = ModelRequest(
        messages=[
            Message(role="system", content="be loud"),
            Message(role="user", content="hi there"),
        ]
    )

    result = await LocalProvider().invoke(local_card(callable="shout"), request)

    assert result.output == "HI THERE!"
    assert result.usage.input_tokens == estimate_request_tokens(request) > 0
    assert result.usage.output_tokens == count_tokens("HI THERE!")
    assert result.usage.seconds > 0
    assert result.provider_model == "shout"


async def test_an_async_callable_imported_from_its_module_gets_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent(
            """\
            from aiosys.models.types import ModelRequest, ProviderResult, Usage

            async def summarize(request: ModelRequest) -> ProviderResult:
                first = request.text.split(".")[0] + "."
                return ProviderResult(output=first, usage=Usage(input_tokens=7, output_tokens=3))

            class Shelf:
                @staticmethod
                async def first_word(text):
                    return text.split()[0]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    provider = LocalProvider()

    result = await provider.invoke(
        local_card("summarize", callable="my_models:summarize"),
        ModelRequest(kind="summarize", text="First sentence. Second one."),
    )
    plain = await provider.invoke(
        local_card("summarize", callable="my_models:Shelf.first_word"),
        ModelRequest(kind="summarize", text="Dotted paths reach methods."),
    )

    assert result.output == "First sentence."
    assert result.usage == Usage(input_tokens=7, output_tokens=3)  # its own usage is kept
    assert plain.output == "Dotted"
    assert plain.usage.input_tokens == count_tokens("Dotted paths reach methods.")


async def test_a_local_embedding_model_may_return_an_array(registered: list[str]) -> None:
    import numpy as np

    LocalProvider.register("ones", lambda texts: np.ones((len(texts), 3)))
    registered.append("ones")
    result = await LocalProvider().invoke(
        local_card("embed", callable="ones"), ModelRequest(kind="embed", texts=["a", "b"])
    )
    assert result.output == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    assert result.usage.output_tokens == 0


async def test_the_registry_is_asked_for_the_card_id_without_a_callable_option(
    registered: list[str],
) -> None:
    register_callable("echo", lambda document: f"read {document}")
    registered.append("echo")
    result = await LocalProvider().invoke(
        local_card("ocr"), ModelRequest(kind="ocr", document="scan.pdf")
    )
    assert result.output == "read scan.pdf"


async def test_a_missing_callable_is_a_config_error_saying_how_to_provide_it() -> None:
    provider = LocalProvider()
    with pytest.raises(ConfigError, match=r"echo@1: no local model 'nobody': register it"):
        await provider.invoke(local_card(callable="nobody"), ModelRequest(text="x"))
    with pytest.raises(ConfigError, match=r"cannot import module 'no_such_module_xyz'"):
        await provider.invoke(local_card(callable="no_such_module_xyz:f"), ModelRequest())
    with pytest.raises(ConfigError, match=r"module 'json' has no 'nothing_here'"):
        await provider.invoke(local_card(callable="json:nothing_here"), ModelRequest())
    with pytest.raises(ConfigError, match=r"'json:__name__' is str, not a callable"):
        await provider.invoke(local_card(callable="json:__name__"), ModelRequest())


async def test_a_failing_callable_is_rejected_but_its_own_aiosys_errors_pass_through(
    registered: list[str],
) -> None:
    def broken(messages: list[Message]) -> str:
        raise ValueError("weights are corrupt")

    async def busy(messages: list[Message]) -> str:
        raise ProviderUnavailable("GPU busy", retry_after=2.0)

    register_callable("broken", broken)
    register_callable("busy", busy)
    registered.extend(["broken", "busy"])
    provider = LocalProvider()

    with pytest.raises(ProviderRejected, match="broken raised ValueError: weights are corrupt"):
        await provider.invoke(local_card(callable="broken"), ModelRequest())
    with pytest.raises(ProviderUnavailable, match="GPU busy") as caught:
        await provider.invoke(local_card(callable="busy"), ModelRequest())
    assert caught.value.retry_after == 2.0


async def test_a_callable_returning_the_wrong_shape_is_rejected(registered: list[str]) -> None:
    register_callable("number", lambda messages: 42)
    register_callable("short", lambda texts: [[1.0]])
    registered.extend(["number", "short"])
    provider = LocalProvider()
    with pytest.raises(ProviderRejected, match="returned int; a chat model returns a str"):
        await provider.invoke(local_card(callable="number"), ModelRequest())
    with pytest.raises(ProviderRejected, match="returned 1 vectors for 2 texts"):
        await provider.invoke(
            local_card("embed", callable="short"), ModelRequest(kind="embed", texts=["a", "b"])
        )


async def test_a_provider_result_from_a_sync_callable_is_returned_as_it_is(
    registered: list[str],
) -> None:
    made = ProviderResult(output="fixed", usage=Usage(input_tokens=1, output_tokens=1))
    register_callable("fixed", lambda request: made)
    registered.append("fixed")
    result = await LocalProvider().invoke(local_card(callable="fixed"), ModelRequest())
    assert result is made
