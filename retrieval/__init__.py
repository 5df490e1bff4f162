"""Documents in, hits out: loaders, embedders, the Chroma-backed knowledge base.

Imports nothing from the rest of the project.
"""

from retrieval.errors import (
    DocumentNotFoundError,
    EmbedderLoadError,
    EmbedderMismatchError,
    RetrievalError,
    UnreadableFileError,
    UnsupportedFileError,
)
from retrieval.types import Chunk, DocumentInfo, Hit, IngestReport

__all__ = [
    "Chunk",
    "DocumentInfo",
    "DocumentNotFoundError",
    "EmbedderLoadError",
    "EmbedderMismatchError",
    "Hit",
    "IngestReport",
    "RetrievalError",
    "UnreadableFileError",
    "UnsupportedFileError",
]
