"""Errors raised by the retrieval package.

RetrievalError
 ├── DocumentError            one input file cannot be ingested (``code`` is stable)
 │    ├── UnsupportedType      unsupported_type    extension / media type not handled
 │    ├── EmptyDocument        empty_document      no text after parsing
 │    ├── CorruptDocument      corrupt_document    the parser failed (broken PDF, bad zip, ...)
 │    ├── BadEncoding          bad_encoding        text that is not valid UTF-8 (or UTF-16 with BOM)
 │    ├── DocumentTooLarge     file_too_large      over the configured byte limit
 │    ├── MissingFile          not_found           the path does not exist or is unreadable
 │    └── OutsideAllowedRoots  outside_allowed_roots  a path that resolves outside the roots
 ├── IndexUnavailable         a stored index cannot be used; the caller rebuilds it
 │    ├── IndexMissing         no CURRENT pointer, or it names a version that is not there
 │    ├── IndexCorrupt         a file is unreadable or fails its manifest checksum
 │    └── IndexMismatch        built with another embedder (name or dimension)
 └── EmbeddingError           the embedder returned the wrong shape or non-finite values

Every ``DocumentError`` is about one file: ingestion records it for that file and goes on
with the rest of the batch. ``IndexUnavailable`` never reaches a caller of search: the owner
of the index rebuilds it from the source of truth (SQL).
"""

from __future__ import annotations


class RetrievalError(Exception):
    pass


class DocumentError(RetrievalError):
    """A single document was refused; ``code`` is a stable machine-readable reason."""

    code = "document_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedType(DocumentError):
    code = "unsupported_type"


class EmptyDocument(DocumentError):
    code = "empty_document"


class CorruptDocument(DocumentError):
    code = "corrupt_document"


class BadEncoding(DocumentError):
    code = "bad_encoding"


class DocumentTooLarge(DocumentError):
    code = "file_too_large"


class MissingFile(DocumentError):
    code = "not_found"


class OutsideAllowedRoots(DocumentError):
    code = "outside_allowed_roots"


class IndexUnavailable(RetrievalError):
    """A stored index version cannot be loaded."""


class IndexMissing(IndexUnavailable):
    pass


class IndexCorrupt(IndexUnavailable):
    pass


class IndexMismatch(IndexUnavailable):
    pass


class EmbeddingError(RetrievalError):
    pass
