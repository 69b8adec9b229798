"""The model catalog and its model cards (``app.models.cards``: one catalog every tenant
shares). A card's page is its Markdown document (``aiosys.models.card_markdown``, as
``aiosys models show --markdown`` prints it) rendered by markdown-it-py with raw HTML off,
so nothing a card file says can put markup or script in the page; where the model is
deployed (its endpoint, its key's variable) is left out, as ``GET /v1/models`` leaves it."""

from __future__ import annotations

from fastapi import APIRouter
from markdown_it import MarkdownIt
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from ..models.card_markdown import card_to_markdown
from ..models.catalog import ModelCard
from ._console import Console

_MD = MarkdownIt("commonmark", {"html": False}).enable("table")


def card_html(card: ModelCard) -> Markup:
    """The card's Markdown document as HTML (raw HTML in it is escaped, unsafe links
    dropped by markdown-it's ``validateLink``), without its endpoint and key variable:
    every tenant's users read the page, and where a model runs is the operator's (as
    ``GET /v1/models`` and every error message keep it)."""
    return Markup(_MD.render(card_to_markdown(card, deployment=False)))  # markdown-it escaped it


def router(console: Console) -> APIRouter:
    r = APIRouter(route_class=console.route_class())
    app = console.app

    @r.get("/models", name="models")
    async def models(request: Request) -> Response:
        cards = sorted(app.models.cards.values(), key=lambda c: c.id)
        return console.page(request, "models.html", title="Models", cards=cards)

    @r.get("/models/{model_id}", name="model")
    async def model(request: Request, model_id: str) -> Response:
        card = app.models.card(model_id)  # ModelNotFound: 404
        return console.page(
            request, "model.html", title=f"Model {card.id}", card=card, html=card_html(card)
        )

    return r


__all__ = ["card_html", "router"]
