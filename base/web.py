"""The shared web shell: one Jinja environment over base.html (base/templates), the app's pages and every
platform's templates (found by folder, not imported)."""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [ROOT / "base" / "templates", ROOT / "popex" / "templates"] + [
    ROOT / p / "templates" for p in ("exchange", "collection", "sharing_api", "decision", "monitor")
]

templates = Jinja2Templates(directory=ROOT / "base" / "templates")
templates.env.loader = ChoiceLoader([FileSystemLoader(str(d)) for d in TEMPLATE_DIRS if d.is_dir()])


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """Render a page; every page extends base.html (zh-CN, phone-width friendly, no external assets)."""
    return templates.TemplateResponse(request, name, context or {}, status_code=status_code)
