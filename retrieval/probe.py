"""``python -m retrieval.probe CHROMA_DIR``: open a Chroma store, count and query every collection, exit 0
if all of that worked. Run as a child process by ``index.probe``."""

import sys


def main(path: str) -> int:
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
    for coll in client.list_collections():
        collection = client.get_collection(coll.name if hasattr(coll, "name") else coll)
        if collection.count():
            got = collection.get(limit=1, include=["embeddings"])
            collection.query(query_embeddings=[got["embeddings"][0]], n_results=1)
    client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
