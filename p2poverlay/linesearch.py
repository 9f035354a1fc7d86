"""
Finding what to put in a line being edited: the reverse search through
the history that Ctrl-R starts (each character typed narrows it, Ctrl-R
again finds an older match), and the completion of a command's name
that Tab asks for.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

__all__ = ["ReverseSearch", "complete"]


def complete(typed: str, words: Sequence[str]) -> Tuple[str, List[str]]:
    """
    Complete the first word of a line.

    @param typed: the line up to the cursor.
    @param words: the words it may be.
    @return: what to add to the line (the rest of the only word that fits,
        and a space; or what all that fit have in common), and the words
        that fit.  Nothing fits once the first word is done.
    """
    word = typed.lstrip().lower()
    if " " in word:
        return "", []
    matches = [candidate for candidate in words if candidate.startswith(word)]
    if len(matches) == 1:
        return matches[0][len(word):] + " ", matches
    common = matches[0] if matches else word
    for candidate in matches[1:]:
        while not candidate.startswith(common):
            common = common[:-1]
    return common[len(word):], matches


class ReverseSearch:
    """
    A search through C{history} (oldest line first), from the newest line.

    @ivar draft: the line being edited when the search began, and
        C{draftIndex} where its cursor was: what cancelling brings back.
    @ivar query: what is searched for.
    @ivar failed: whether the last search found nothing.
    """

    def __init__(self, history: List[bytes], draft: List[bytes],
                 draftIndex: int) -> None:
        self.history = history
        self.draft = draft
        self.draftIndex = draftIndex
        self.query = ""
        self.position = len(history)
        self.failed = False

    def prompt(self) -> str:
        label = "failed reverse-i-search" if self.failed else "reverse-i-search"
        return f"({label})`{self.query}': "

    def _find(self, before: int) -> Optional[Tuple[bytes, int]]:
        query = self.query.encode("utf-8")
        for position in range(min(before, len(self.history)) - 1, -1, -1):
            line = self.history[position]
            at = line.rfind(query)
            if at >= 0:
                self.position, self.failed = position, False
                return line, len(line[:at].decode("utf-8", "replace"))
        self.failed = True
        return None

    def type(self, text: str) -> Optional[Tuple[bytes, int]]:
        """
        Search for more: the match (the line, and the index of the
        character where the query is in it), or C{None}.
        """
        self.query += text
        return self._find(self.position + 1)

    def older(self) -> Optional[Tuple[bytes, int]]:
        """The next match older than the one found (Ctrl-R again)."""
        return self._find(self.position)

    def backspace(self) -> Optional[Tuple[bytes, int]]:
        """Search for less, from the newest line again."""
        self.query = self.query[:-1]
        return self._find(len(self.history) + 1)
