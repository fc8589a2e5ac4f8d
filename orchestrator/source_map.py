"""Where each piece of a description came from: a line of the file, or a command-line option.

lxml knows the line an element starts on, not the line of each attribute: in a `<type>`
written over five lines, a bad `squashfscompression=` would be blamed on the `<type` line.
The source text is kept here so that a message points at the attribute's own line. What
kiwi-ng's options (--set-type-attr, --add-package, ...) put into the tree has no line at all:
a message about it names the option, since the file does not hold the mistake.
"""

from __future__ import annotations

import bisect
import re
from pathlib import Path

from lxml import etree

from liveorch.orchestrator.errors import DescriptionError

# One attribute of a start tag: its name (any prefix included) and its quoted value.
_ATTRIBUTE = re.compile(r"""([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""")


class SourceMap:
    """The description's text, and which elements and attributes the command line made."""

    def __init__(self, path: Path, text: str, made: list[tuple[etree._Element, str]] | None = None,
                 set_attributes: dict[str, str] | None = None) -> None:
        self.path = path
        self.text = text
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._made = made or []  # elements an option added, with the option (held, so lxml keeps their proxies)
        self._set_attributes = set_attributes or {}  # <type image="iso"> attribute -> the option that set it

    def line(self, element: etree._Element, attribute: str | None = None) -> int | None:
        """The attribute's own line, else the line the element's start tag opens on (lxml's
        sourceline is where a start tag written over several lines ends)."""
        opening = self._opening(element)
        if opening is None:
            return element.sourceline
        position = opening.end()
        for match in _ATTRIBUTE.finditer(self.text, position) if attribute is not None else ():
            if self.text[position:match.start()].strip():  # the start tag ended ('>' or '/>') before this match
                break
            if match.group(1).rpartition(":")[2] == attribute:
                return self._line_at(match.start())
            position = match.end()
        return self._line_at(opening.start())

    def _opening(self, element: etree._Element) -> re.Match[str] | None:
        """The last `<tag` that starts before the end of the element's sourceline."""
        end = element.sourceline
        if end is None or end > len(self._line_starts):
            return None
        stop = self._line_starts[end] if end < len(self._line_starts) else len(self.text)
        tag = re.compile(rf"<(?:[\w.-]+:)?{re.escape(etree.QName(element).localname)}(?=[\s/>])")
        openings = list(tag.finditer(self.text, 0, stop))
        return openings[-1] if openings else None

    def _line_at(self, offset: int) -> int:
        return bisect.bisect_right(self._line_starts, offset)

    def option(self, element: etree._Element, attribute: str | None = None) -> str | None:
        """The command-line option that made this element or set this attribute, if one did."""
        if attribute is not None and element.tag == "type" and attribute in self._set_attributes:
            return self._set_attributes[attribute]
        for node in (element, *element.iterancestors()):
            for made, option in self._made:
                if node is made:
                    return option
        return None

    def where(self, element: etree._Element, attribute: str | None = None) -> str:
        """'config.xml:12' or '--set-type-attr volid=X': what a message is about."""
        option = self.option(element, attribute)
        if option is not None:
            return option
        line = self.line(element, attribute)
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, message: str, element: etree._Element, attribute: str | None = None,
              hint: str | None = None) -> DescriptionError:
        return DescriptionError(message, self.where(element, attribute), None, hint)
