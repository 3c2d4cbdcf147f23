"""Text as FF data (paper §3.4): a 30-symbol alphabet, strings cut reproducibly from a book, and the
windows a next-character model reads.

A sample is the one-hot window of the previous `window` characters (window x 30 values); its label
is the character that follows. A supervised FF network then judges (window, candidate) pairs exactly
as it judges (image, label) pairs, and predicting the next character is predicting the label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from . import labels as label_ops
from .errors import FFError

ALPHABET = "abcdefghijklmnopqrstuvwxyz ,;."  # the paper's 30 symbols: 26 letters, space, comma, semicolon, full stop
# punctuation with a close stand-in in the alphabet; every other character outside it is dropped
STAND_INS = str.maketrans({"!": ".", "?": ".", ":": ";", "-": " ", "\n": " ", "\t": " ", "\r": " "})
CODE = {c: i for i, c in enumerate(ALPHABET)}
AESOP_MD5 = "e0f033ae0a0963f0554cd550dc6fa363"
BOOK_START = "*** START OF THIS PROJECT GUTENBERG EBOOK AESOP'S FABLES ***"
BOOK_END = "LIFE OF AESOP"  # the fables end where the Life of Aesop begins
DOCUMENT_BREAK = re.compile(r"\n[ \t]*\n[ \t]*\n\s*")  # two or more blank lines end a document (a fable)
SPLIT_SEED = 0  # the split into training and held-out strings is a property of the data, not of run.seed


def clean(text: str) -> str:
    """Lower case, punctuation mapped to its stand-in, other characters dropped, runs of spaces made one."""
    kept = "".join(c for c in text.lower().translate(STAND_INS) if c in CODE)
    return re.sub(" +", " ", kept).strip()


def encode(text: str, what: str = "the text") -> torch.Tensor:
    """A string of alphabet characters -> (len,) int64 codes; upper case is lowered. Anything else is refused."""
    text = text.lower()
    unknown = sorted(set(text) - set(ALPHABET))
    if unknown:
        raise FFError(f"{what} holds characters outside the alphabet ({''.join(unknown)!r}): use only a-z, "
                      "space, comma, semicolon and full stop.")
    return torch.tensor([CODE[c] for c in text], dtype=torch.long)


def decode(codes: torch.Tensor) -> str:
    """(len,) codes -> the string they spell."""
    return "".join(ALPHABET[int(i)] for i in codes)


def one_hot(windows: torch.Tensor) -> torch.Tensor:
    """(N, window) codes -> (N, window * 30) float one-hot rows, the model's input."""
    return label_ops.one_hot(windows, len(ALPHABET)).flatten(1)


def windows(strings: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, L) strings -> every (window, next character) pair after each string's first `window`
    characters: ((S * (L - window), window) codes, (S * (L - window),) targets), string by string."""
    if strings.shape[1] <= window:
        return strings.new_zeros((0, window)), strings.new_zeros((0,))
    contexts = strings.unfold(1, window, 1)[:, :-1]  # (S, L - window, window)
    return contexts.reshape(-1, window), strings[:, window:].reshape(-1)


@dataclass
class Corpus:
    """The strings of a text dataset, as codes: what generation, free-running scores and baselines read."""

    window: int
    train: torch.Tensor  # (S, L) training strings
    val: torch.Tensor  # (V, L) held-out strings for choices (other documents than train's)
    test: torch.Tensor  # (T, L) held-out strings, scored once at the end (other documents again)


def aesop_documents(raw: str) -> list[str]:
    """The fables of the Gutenberg edition, each without its title."""
    if BOOK_START not in raw or BOOK_END not in raw:
        raise FFError("this aesop.txt is not the Project Gutenberg edition (#21) the aesop dataset reads: it lacks "
                      "its start marker or its LIFE OF AESOP heading. Use data.dataset = text with data.path instead.")
    book = raw.split(BOOK_START, 1)[1].split(BOOK_END, 1)[0]
    blocks = [b.strip() for b in DOCUMENT_BREAK.split(book) if b.strip()][1:]  # [0] is the book's title page
    return [b.split("\n\n", 1)[1] if "\n\n" in b else b for b in blocks]  # a fable's first paragraph is its title


def text_documents(raw: str) -> list[str]:
    """A plain text's documents: the blocks between two or more blank lines."""
    return [b for b in DOCUMENT_BREAK.split(raw.replace("\r\n", "\n")) if b.strip()]


def build_corpus(documents: list[str], *, window: int, length: int, strings: int, val_strings: int,
                 source: str) -> Corpus:
    """Training strings: the first `length` characters of `strings` documents drawn by a fixed seed.
    Held-out strings: every non-overlapping `length`-character piece of the other documents, which
    alternate between validation (at most `val_strings` strings) and test. With too few documents
    (a text without blank-line breaks) the cleaned text is cut into `length`-character documents."""
    cleaned = [clean(d) for d in documents]
    if not any(cleaned):
        raise FFError(f"{source} holds no characters of the alphabet (a-z, space, , ; .): give an English text.")
    usable = [d for d in cleaned if len(d) >= length]
    if len(usable) < strings + 2:
        whole = " ".join(d for d in cleaned if d)
        usable = [whole[i : i + length] for i in range(0, len(whole) - length + 1, length)]
    if len(usable) < strings + 2:
        raise FFError(f"{source} gives {len(usable)} strings of {length} characters, and data.strings = {strings} "
                      f"needs {strings + 2} (training plus held-out): lower data.strings or data.string_length, or "
                      "give a longer text.")
    order = torch.randperm(len(usable), generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    train = [usable[i][:length] for i in order[:strings]]
    held = [usable[i] for i in order[strings:]]

    def pieces(docs: list[str]) -> list[str]:
        return [d[i : i + length] for d in docs for i in range(0, len(d) - length + 1, length)]

    val, test = pieces(held[0::2])[:val_strings], pieces(held[1::2])

    def codes(parts: list[str]) -> torch.Tensor:
        return torch.stack([encode(p) for p in parts]) if parts else torch.zeros((0, length), dtype=torch.long)

    return Corpus(window, codes(train), codes(val), codes(test))


def read_text(path: Path) -> str:
    """A text file's contents, with a clear error for a missing, empty or binary file."""
    if not path.is_file():
        raise FFError(f"{path} is not a file: set data.path to a plain-text file.")
    raw = path.read_bytes()
    if not raw.strip():
        raise FFError(f"{path} is empty: give a text with some sentences in it.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FFError(f"{path} is not UTF-8 or ASCII text: convert it (iconv -t utf-8) or give another file.") from None
