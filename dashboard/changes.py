"""The live refresh sends only the parts that changed: a tag per part, echoed by the page.

Every poll of /parts/live answers with `X-Hookwatch-Parts: id=tag,...` (a hash of each part's
HTML) and the page sends the last one back (static/dashboard.js). A part whose tag the page
already holds is left out of the answer: a quiet refresh is the "updated" line alone, some
150 bytes instead of the whole table. The tag is of the rendered HTML, so whatever a part
shows (a banner, a new column) counts, with no list of inputs to keep in step.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

HEADER = "x-hookwatch-parts"
ALWAYS = frozenset({"updated"})  # the time of the refresh: new every time, and tiny
_ITEM = re.compile(r"([a-z][a-z-]{0,30})=([0-9a-f]{16})")


def tag(html: str) -> str:
    return hashlib.blake2b(html.encode(), digest_size=8).hexdigest()


def parse(header: str) -> dict[str, str]:
    """The tags the page holds, from its header; anything malformed is ignored (sent anew)."""
    return dict(_ITEM.findall(header[:2000]))


def changed(parts: Sequence[tuple[str, str]], held: str) -> tuple[str, str]:
    """(the HTML of the parts the page lacks, the header naming every part's tag)."""
    seen = parse(held)
    tags = [(part, tag(html)) for part, html in parts]
    body = "".join(html for (part, html), (_, t) in zip(parts, tags, strict=True)
                   if part in ALWAYS or seen.get(part) != t)
    return body, ",".join(f"{part}={t}" for part, t in tags if part not in ALWAYS)
