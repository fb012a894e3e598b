"""A deterministic corpus of English-like documents, generated offline from a seed.

Sentences come from a small grammar over a fixed vocabulary, so the text has the shape the
splitters care about (words, sentence punctuation, paragraphs separated by blank lines) and the
same seed gives the same bytes on every machine and Python version (only
``random.Random(seed).random()`` is used, which is stable across releases).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

SEED = 20240611


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_NOUNS = _words(
    "system database table index query worker queue server client request response record "
    "column value document paragraph sentence chunk vector embedding model provider network "
    "engineer team customer report budget schedule project meeting decision policy river "
    "mountain village city library garden kitchen window morning evening winter summer "
    "history language market price product feature release version error failure backup "
    "disk memory cache thread process signal message channel account password service "
    "machine cluster node replica transaction lock batch pipeline stream file folder page "
    "question answer reason method result pattern example detail problem solution idea"
)
_ADJECTIVES = _words(
    "quick slow large small careful quiet busy early late simple complex reliable fragile "
    "modern ancient bright dark warm cold public private local remote daily weekly recent "
    "stable noisy clean empty full shared single final initial useful obvious subtle rare "
    "common steady sudden gentle strict flexible narrow broad expensive cheap silent"
)
_VERBS = _words(
    "reads writes stores sends receives checks updates replaces explains describes measures "
    "follows ignores returns builds changes opens closes protects shares repeats tracks finds "
    "creates removes improves delays supports reviews compares"
)
_ADVERBS = _words(
    "quickly slowly carefully quietly rarely often usually suddenly eventually gently "
    "clearly briefly always sometimes twice again"
)
_PREPOSITIONS = _words("in on under over near behind before after during across through with")
_CONNECTIVES = (
    "However,",
    "Meanwhile,",
    "In practice,",
    "As a result,",
    "For example,",
    "Later that day,",
    "In most cases,",
    "At first,",
    "On the other hand,",
    "Finally,",
)
_NAMES = _words("Alice Bob Carol Dmitri Elena Farid Grace Hiro Ingrid Jamal Keiko Luis Maya Noor")


@dataclass(frozen=True)
class Document:
    """One source row: ``id``, a short ``title`` and a ``body`` of paragraphs."""

    id: int
    title: str
    body: str


class TextGenerator:
    """Sentences, paragraphs and documents from one seeded random stream."""

    def __init__(self, seed: int = SEED) -> None:
        self.rng = random.Random(seed)

    def _pick(self, words: tuple[str, ...]) -> str:
        return words[int(self.rng.random() * len(words))]

    def noun(self) -> str:
        return self._pick(_NOUNS)

    def _noun_phrase(self) -> str:
        if self.rng.random() < 0.5:
            return f"the {self._pick(_ADJECTIVES)} {self._pick(_NOUNS)}"
        if self.rng.random() < 0.2:
            return self._pick(_NAMES)
        return f"the {self._pick(_NOUNS)}"

    def sentence(self) -> str:
        """One sentence ending in ``.``, ``?`` or ``!``."""
        parts = [self._noun_phrase(), self._pick(_VERBS), self._noun_phrase()]
        roll = self.rng.random()
        if roll < 0.45:
            parts += [self._pick(_PREPOSITIONS), self._noun_phrase()]
        if roll > 0.75:
            parts.insert(1, self._pick(_ADVERBS))
        if self.rng.random() < 0.25:
            parts += ["and", self._pick(_VERBS), self._noun_phrase()]
        if self.rng.random() < 0.15:
            parts.insert(0, self._pick(_CONNECTIVES))
        text = " ".join(parts)
        text = text[0].upper() + text[1:]
        end = self.rng.random()
        return text + ("?" if end < 0.05 else "!" if end < 0.08 else ".")

    def paragraph(self) -> str:
        """Three to eight sentences on one line (about 200-700 characters)."""
        count = 3 + int(self.rng.random() * 6)
        return " ".join(self.sentence() for _ in range(count))

    def text(self, min_chars: int, max_chars: int) -> str:
        """Paragraphs joined by blank lines, ``min_chars`` to about ``max_chars`` long."""
        target = min_chars + int(self.rng.random() * (max_chars - min_chars + 1))
        paragraphs: list[str] = []
        length = 0
        while length < target:
            paragraph = self.paragraph()
            if length and length + 2 + len(paragraph) > max_chars:
                break
            paragraphs.append(paragraph)
            length += len(paragraph) + (2 if len(paragraphs) > 1 else 0)
        return "\n\n".join(paragraphs)

    def title(self) -> str:
        words = [self._pick(_ADJECTIVES), self._pick(_NOUNS), self._pick(_PREPOSITIONS)]
        words.append(self._pick(_NOUNS))
        return " ".join(words).capitalize()


def documents(
    count: int, seed: int = SEED, min_chars: int = 1000, max_chars: int = 3000
) -> Iterator[Document]:
    """``count`` documents with ids 1..count; the first k are the same for any count >= k."""
    generator = TextGenerator(seed)
    for doc_id in range(1, count + 1):
        yield Document(doc_id, generator.title(), generator.text(min_chars, max_chars))


def huge_text(megabytes: float, seed: int) -> str:
    """A single text of about ``megabytes`` MB of paragraphs (the memory scenario)."""
    generator = TextGenerator(seed)
    target = int(megabytes * 1_000_000)
    paragraphs: list[str] = []
    length = 0
    while length < target:
        paragraph = generator.paragraph()
        paragraphs.append(paragraph)
        length += len(paragraph) + 2
    return "\n\n".join(paragraphs)


def _edit_a_paragraph(body: str, seed: int, edit: Callable[[str, TextGenerator], str]) -> str:
    """``body`` with one of its paragraphs, picked by ``seed``, passed through ``edit``."""
    generator = TextGenerator(seed)
    paragraphs = body.split("\n\n")
    index = int(generator.rng.random() * len(paragraphs))
    paragraphs[index] = edit(paragraphs[index], generator)
    return "\n\n".join(paragraphs)


def edit_one_paragraph(body: str, seed: int) -> str:
    """``body`` with one of its paragraphs replaced by a new one (the cost scenario's edit)."""
    return _edit_a_paragraph(body, seed, lambda _old, generator: generator.paragraph())


def edit_one_sentence(body: str, seed: int) -> str:
    """``body`` with one sentence of one paragraph rewritten."""

    def rewrite(paragraph: str, generator: TextGenerator) -> str:
        sentences = paragraph.split(". ")
        which = int(generator.rng.random() * len(sentences))
        sentences[which] = generator.sentence().rstrip(".?!")
        return ". ".join(sentences)

    return _edit_a_paragraph(body, seed, rewrite)


def edit_one_word(body: str, seed: int) -> str:
    """``body`` with one word of one paragraph replaced by another (a typo fixed)."""

    def replace(paragraph: str, generator: TextGenerator) -> str:
        words = paragraph.split(" ")
        which = int(generator.rng.random() * len(words))
        words[which] = generator.noun()
        return " ".join(words)

    return _edit_a_paragraph(body, seed, replace)
