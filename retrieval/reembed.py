"""A knowledge base whose embedder changed is re-embedded from its record, instead of being refused: every
chunk's vectors in the changed space are computed again by the new embedder (text from the record,
pictures from their stored thumbnails), staged beside the live ones, and swapped in with the new
embedder's name in one transaction. A crash part-way leaves the old vectors and the old name, so the next
open starts again; the vector index is then rebuilt from the record (it is derived from it).

What is kept as it was: the chunks themselves (cut for the old text embedder's window) and the lexical
index. Pictures are embedded from their thumbnails (at most 384 pixels a side, more than the 224-384 the
cross-modal encoders read)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from retrieval.errors import EmbedderMismatchError
from retrieval.records import Records
from retrieval.types import PICTURES

log = logging.getLogger(__name__)
HEAD_CHARS = 300  # as at ingest: the part of a text chunk the cross-modal space sees

Progress = Callable[[int, int], None]  # (chunks done, chunks in all)


def signature(embedder) -> str:
    return f"{embedder.name}|{embedder.dim}" if embedder is not None else "none"


def changed_spaces(records: Records, embedder, text_embedder) -> dict[str, str]:
    """``{meta key: new signature}`` of the spaces whose stored embedder differs from the configured one
    (a knowledge base without a stored one, new or older, takes the configured one as it is)."""
    wanted = {"embedder": signature(embedder), "text_embedder": signature(text_embedder)}
    return {key: value for key, value in wanted.items()
            if (stored := records.get_meta(key)) is not None and stored != value}


def reembed(records: Records, files_dir: Path, embedder, text_embedder, changed: dict[str, str],
            progress: Progress | None = None) -> int:
    """Compute the changed spaces' vectors again from the record; returns the chunks seen."""
    from PIL import Image

    if embedder is None and text_embedder is None:
        raise EmbedderMismatchError("Configure at least one embedder (ASSISTANT_RETRIEVAL__EMBEDDER or "
                                    "ASSISTANT_RETRIEVAL__TEXT_EMBEDDER).")
    spaces = {"embedder": "cross", "text_embedder": "text"}
    cross, text = "embedder" in changed, "text_embedder" in changed
    had_text = records.vector_ids("text") if text else set()
    total, done = records.count(), 0
    records.drop_staged()  # an earlier attempt that did not finish
    log.info("re-embedding %d chunks: %s", total, ", ".join(f"{k} -> {v.partition('|')[0]}" for k, v in changed.items()))
    for batch in records.all_chunks():
        if cross and embedder is not None:
            pictures = [(i, thumb) for i, kind, _, thumb in batch if kind in PICTURES and thumb]
            passages = [(i, body[:HEAD_CHARS]) for i, kind, body, _ in batch if kind not in PICTURES]
            images = []
            for _, thumb in pictures:
                with Image.open(files_dir / Path(thumb).name) as im:
                    images.append(im.convert("RGB"))
            if images:
                records.stage_vectors("cross", [i for i, _ in pictures], embedder.embed_images(images))
            if passages:
                records.stage_vectors("cross", [i for i, _ in passages],
                                      embedder.embed_texts([t for _, t in passages]))
        if text and text_embedder is not None:
            # passages, and the pictures that had a caption in the text space
            wanted = [(i, body) for i, kind, body, _ in batch if kind not in PICTURES or i in had_text]
            if wanted:
                records.stage_vectors("text", [i for i, _ in wanted],
                                      text_embedder.embed_texts([t for _, t in wanted]))
        done += len(batch)
        if progress is not None:
            progress(done, total)
    records.swap_staged([spaces[key] for key in changed], changed)
    return done
