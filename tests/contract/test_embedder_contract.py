"""One contract for every ``Embedder``: the hashing fake and CLIP / SigLIP / SigLIP 2 through transformers."""

import numpy as np
import pytest
from PIL import Image

from retrieval.embedders import Embedder, TransformersEmbedder
from retrieval.errors import EmbedderLoadError
from tests.helpers.fakes import HashingEmbedder


class EmbedderContract:
    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError

    def test_protocol(self, embedder):
        assert isinstance(embedder, Embedder) and embedder.name and embedder.dim > 0

    def test_texts_and_images_share_one_normalised_space(self, embedder):
        texts = embedder.embed_texts(["a red car", "an invoice", "图片"])
        images = embedder.embed_images([Image.new("RGB", (40, 30), c) for c in ("red", "blue")])
        assert texts.shape == (3, embedder.dim) and images.shape == (2, embedder.dim)
        assert texts.dtype == np.float32 and images.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(np.vstack([texts, images]), axis=1), 1.0, atol=1e-5)

    def test_deterministic_and_batch_independent(self, embedder):
        one = embedder.embed_texts(["a red car"])
        many = embedder.embed_texts(["x", "a red car", "y"])
        np.testing.assert_allclose(one[0], many[1], atol=1e-5)

    def test_empty_input(self, embedder):
        assert embedder.embed_texts([]).shape[0] == 0


class TestHashing(EmbedderContract):
    @pytest.fixture
    def embedder(self):
        return HashingEmbedder()


class TestCLIP(EmbedderContract):
    @pytest.fixture(scope="class")
    def embedder(self, tiny_models):
        return TransformersEmbedder.from_pretrained(str(tiny_models["clip"]))

    def test_long_text_is_truncated_not_an_error(self, embedder):
        assert embedder.embed_texts(["word " * 500]).shape == (1, embedder.dim)


class TestSigLIP(EmbedderContract):
    @pytest.fixture(scope="class")
    def embedder(self, tiny_models):
        return TransformersEmbedder.from_pretrained(str(tiny_models["siglip"]))


class TestSigLIP2(EmbedderContract):
    """SigLIP 2 with variable resolution (NaFlex: patches, their 2-D shape and a mask), loaded through the
    same ``AutoModel`` path as the default embedder."""

    @pytest.fixture(scope="class")
    def embedder(self, tiny_models):
        return TransformersEmbedder.from_pretrained(str(tiny_models["siglip2"]))

    def test_images_of_any_shape(self, embedder):
        wide, tall = embedder.embed_images([Image.new("RGB", (400, 60), "red"), Image.new("RGB", (30, 300), "red")])
        assert wide.shape == tall.shape == (embedder.dim,)


def test_missing_embedder_is_a_clear_error(tmp_path):
    with pytest.raises(EmbedderLoadError, match="ASSISTANT_RETRIEVAL__EMBEDDER"):
        TransformersEmbedder.from_pretrained(str(tmp_path / "none"))


def test_not_cached_embedder_names_it():
    with pytest.raises(EmbedderLoadError, match="example-org/no-such-clip.*ASSISTANT_RETRIEVAL__EMBEDDER"):
        TransformersEmbedder.from_pretrained("example-org/no-such-clip")
