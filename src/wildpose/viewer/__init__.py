"""An interactive 3D viewer of a result: one self-contained HTML file that opens with no network.

The page plays ``poses_world``: orbit, pan and zoom; play/pause, speed, a frame slider, the time and frame number;
per-track show/hide with each track's colour and id; each person's trajectory on the floor; the camera's position
and view as a small frustum; and, given the source video, the video beside the 3D in sync (by timestamps).

Everything the page needs is inside it: three.js (vendored in ``vendor/``, one classic script), the viewer's
script and style, and the result's rows quantised to millimetres and deflated (``payload.py``), base64 in a
``<script type="application/octet-stream">`` element. A video is embedded as a data URL when it is at most
``EMBED_VIDEO_MAX_BYTES``; a larger one is referenced by its path relative to the HTML file (the page then needs
the video next to it, where it was when the page was written).

The page exposes ``window.wildposeViewer`` (see ``viewer.js``) for tests and for users' own scripts.
"""

from __future__ import annotations

import base64
import html
import json
import mimetypes
import os
import re
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from ..atomic import atomic_path
from ..errors import FormatError
from ..types import Result
from . import payload

__all__ = ["write_viewer", "view_result_dir", "EMBED_VIDEO_MAX_BYTES", "VIEWER_NAME"]

EMBED_VIDEO_MAX_BYTES = 8 * 1024 * 1024  # larger videos are referenced, so the page stays light
VIEWER_NAME = "view.html"
_VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4", ".webm": "video/webm",
                ".mkv": "video/webm", ".ogv": "video/ogg"}  # Chromium plays Matroska through its WebM path


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _script_safe(text: str, what: str) -> str:
    """``text`` to inline in a <script> element: the HTML parser ends the element at '</script' and enters
    escape states at '<!--', so neither may appear (JSON is escaped instead; code is checked)."""
    lowered = text.lower()
    if "</script" in lowered or "<!--" in lowered:
        raise ValueError(f"{what} holds '</script' or '<!--' and cannot be inlined")
    return text


def _json_for_script(value) -> str:
    # '<' as \u003c keeps any string (a title, say) from closing the element; JSON.parse reads it back
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c").replace("&", "\\u0026")


def _video_source(video: Path, out_path: Path) -> dict:
    video = Path(video)
    if not video.is_file():
        raise FormatError("no such video file", video)
    size = video.stat().st_size
    mime = _VIDEO_TYPES.get(video.suffix.lower()) or mimetypes.guess_type(video.name)[0] or "video/mp4"
    if size <= EMBED_VIDEO_MAX_BYTES:
        data = base64.b64encode(video.read_bytes()).decode("ascii")
        return {"src": f"data:{mime};base64,{data}", "embedded": True, "name": video.name, "bytes": size}
    try:
        rel = os.path.relpath(video.resolve(), out_path.resolve().parent)
        src = Path(rel).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        src = video.resolve().as_uri()
    return {"src": src if src.startswith("file:") else quote(src), "embedded": False, "name": video.name,
            "bytes": size}


def render_html(result: Result, *, video_source: dict | None = None, title: str | None = None,
                source_path=None) -> str:
    """The page's HTML text for ``result`` (see the module docstring)."""
    header, blob = payload.encode(result, source_path)
    header["title"] = title or "wildpose"
    header["video"] = video_source and {k: v for k, v in video_source.items() if k != "src"}
    data = base64.b64encode(blob).decode("ascii")
    page = _asset("template.html")
    parts = {
        "{{TITLE}}": html.escape(header["title"], quote=True),
        "{{STYLE}}": _asset("viewer.css"),
        "{{HEADER_JSON}}": _json_for_script(header),
        "{{DATA_BASE64}}": data,
        "{{VIDEO_SRC_JSON}}": _json_for_script(video_source["src"] if video_source else None),
        "{{THREE_JS}}": _script_safe(_asset("vendor/three.bundle.min.js"), "three.bundle.min.js"),
        "{{VIEWER_JS}}": _script_safe(_asset("viewer.js"), "viewer.js"),
    }
    # one pass: an inserted part is never scanned for another part's placeholder
    return re.sub(r"\{\{[A-Z_0-9]+\}\}", lambda m: parts[m.group(0)], page)


def write_viewer(result: Result, out_path: Path, *, video: Path | None = None, title: str | None = None) -> Path:
    """Write the viewer of ``result`` to ``out_path`` (one self-contained .html file), atomically.

    Parameters
    ----------
    result
        A result with ``poses_world`` (what ``wildpose run`` writes to poses.npz).
    out_path
        The HTML file to write; its folder is made if needed.
    video
        The source video, played beside the 3D in sync. Embedded when at most ``EMBED_VIDEO_MAX_BYTES``,
        otherwise referenced by its path relative to ``out_path``.
    title
        The page's title (default: the video's name, else "wildpose").

    Returns
    -------
    Path
        ``out_path``.

    Raises
    ------
    FormatError
        The result has no world poses, or the video is not a file.
    """
    out_path = Path(out_path)
    source = _video_source(Path(video), out_path) if video is not None else None
    if title is None:
        title = f"wildpose: {Path(video).name}" if video is not None else "wildpose"
    text = render_html(result, video_source=source, title=title)
    with atomic_path(out_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return out_path


def view_result_dir(result_dir, out=None, video=None) -> Path:
    """``wildpose view RESULT_DIR``: the viewer of ``RESULT_DIR/poses.npz``, written to ``out`` (default
    ``RESULT_DIR/view.html``). Returns the path written."""
    from ..formats.result import load_result

    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise FormatError("not a result folder (expected a folder holding poses.npz)", result_dir)
    result = load_result(result_dir / "poses.npz")
    out = Path(out) if out is not None else result_dir / VIEWER_NAME
    title = f"wildpose: {Path(video).name}" if video is not None else f"wildpose: {result_dir.resolve().name}"
    return write_viewer(result, out, video=None if video is None else Path(video), title=title)
