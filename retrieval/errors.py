"""Errors the retrieval layer raises on purpose. Their message is written for the user."""


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
