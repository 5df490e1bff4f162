"""Errors the retrieval layer raises on purpose. Their message is written for the user."""

import re
from pathlib import Path


class RetrievalError(Exception):
    """Base of every deliberate retrieval failure."""


class UnsupportedFileError(RetrievalError):
    pass


class UnreadableFileError(RetrievalError):
    pass


class EmbedderMismatchError(RetrievalError):
    pass


class EmbedderLoadError(RetrievalError):
    pass


class DocumentNotFoundError(RetrievalError):
    pass


class KnowledgeBaseBusyError(RetrievalError):
    """Another process has the knowledge base open for writing."""


class StoreTooLargeError(RetrievalError):
    """The vector index grew past the size guard."""


class IndexUnreachableError(RetrievalError):
    """The Chroma server holding the vector index cannot be reached or refused a request."""


class ImageTooLargeError(UnreadableFileError):
    """An image past the product's pixel limit (or a file claiming such dimensions)."""


# One wording per problem, the same in the chat and in the knowledge base. A message about a file is
# ``"<file name>: <problem>"``: the name once, never a folder (uploads sit in server folders).
EMPTY = "the file is empty"
UNREADABLE_IMAGE = "not a readable image (the file is damaged, incomplete, or not an image)"


def unsupported(suffix: str, supported: list[str] | set[str]) -> str:
    return f"unsupported file type '{suffix or '(none)'}'; supported: {', '.join(sorted(supported))}"


def image_too_large(pixels: int, limit: int, kind: str) -> str:
    return (f"this image is too large to open ({pixels / 1e6:,.0f} megapixels; the limit is "
            f"{limit / 1e6:,.0f} for {kind})")


def file_too_large(size: int, limit: int) -> str:
    return f"the file is too large ({size / 1e6:,.0f} MB; the limit is {limit / 1e6:,.0f} MB)"


def named(name: str, problem: str) -> str:
    return f"{name}: {problem}"


def without_name(message: str, source: str) -> str:
    """The problem alone, for a line that names the file already (``failed a.png: <problem>``)."""
    prefix = f"{Path(source).name}: "
    return message[len(prefix):] if message.startswith(prefix) else message


_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:|~)?(?:[\\/][^\s'\"\\/:]+){2,}[\\/]?")  # two parts or more


def detail(exc: BaseException, name: str) -> str:
    """An exception's first line for a user: folders removed, the file called "the file" (its name is
    already at the start of the message), at most 160 characters. A message that holds a traceback (some
    libraries wrap one in their exception) is given by its last line, the error itself."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        lines = lines[-1:]
    text = lines[0].strip() if lines else type(exc).__name__

    def short(match: re.Match) -> str:
        base = re.split(r"[\\/]", match.group(0).rstrip("\\/"))[-1]
        return "the file" if base == name else base

    text = _PATH.sub(short, text)
    if name:
        text = text.replace(name, "the file")
    return text if len(text) <= 160 else text[:157] + "..."
