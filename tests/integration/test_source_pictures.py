"""Retrieved pictures reach the model as images: each labelled with its source number in the prompt, after
the user's own images, within the visual budget (at most N source pictures, M visual tokens, the user's
images counted first); passages stay quoted text. Through the tiny Qwen2.5-VL (its processor's image grid
is counted) and the endpoint backend (the images it sends are counted). Real Chroma, hashing embedder."""

from __future__ import annotations

import pytest

from assistant.knowledge import Knowledge
from assistant.models.openai_endpoint import OpenAIEndpointModel
from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
from assistant.pipeline import AnswerPipeline, Completed, Retrieved
from assistant.types import ChatRequest, GenerationParams
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.images import write_image
from tests.helpers.openai_server import serve_openai

COLOURS = ["orange", "steelblue", "seagreen", "purple"]  # distinct pictures (not near-duplicates)


@pytest.fixture
def knowledge(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for colour in COLOURS:  # every document comes back among the k=5 sources
        write_image(docs / f"{colour}-chart.png", (640, 480), colour)
    (docs / "notes.txt").write_text("The orange chart shows sales by quarter; the totals are in the table.")
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    kb.ingest_paths(sorted(docs.iterdir()))
    yield Knowledge.ready(kb)
    kb.close()


@pytest.fixture
def question_image(tmp_path):
    return write_image(tmp_path / "mine.png", (400, 300), "orange")


def answer(pipeline, image, text="What does the chart show?"):
    events = list(pipeline.answer(ChatRequest(text, (image,), params=GenerationParams(16, 0.0), k=5)))
    sources = next(e for e in events if isinstance(e, Retrieved)).sources
    return sources, next(e for e in events if isinstance(e, Completed))


def test_source_pictures_follow_the_users_image_labelled_by_number(knowledge, question_image, tmp_path):
    model = ScriptedModel("It shows sales [2].")
    scratch = tmp_path / "scratch"
    pipeline = AnswerPipeline(model, knowledge, k=5, annotations_dir=scratch, source_images=2)
    sources, done = answer(pipeline, question_image)
    turn = model.calls[-1][-1]
    pictures = [s for s in sources if s.kind == "image"]
    assert len(pictures) >= 3  # more picture sources than the budget of 2
    assert turn.images[0] == question_image and len(turn.images) == 3
    for n, source in enumerate(pictures[:2], start=2):
        assert f'<source id="{source.number}"' in turn.text
        assert f'picture="attached image {n}"' in turn.text.split(f'<source id="{source.number}"')[1].split("\n")[0]
    assert f'<source id="{pictures[2].number}"' in turn.text and turn.text.count("picture=") == 2
    assert "The first 1 attached image(s) are the user's own" in turn.text
    assert not list(scratch.glob("source-*"))  # the copies went with the answer
    assert done.cited == (2,)


class Measuring(ScriptedModel):
    """Records the size of every image it is given, while the files exist."""

    def stream(self, turns, params):
        from PIL import Image

        self.sizes = []
        for path in turns[-1].images:
            with Image.open(path) as image:
                self.sizes.append(image.size)
        return super().stream(turns, params)


def test_the_budget_counts_the_users_images_first(knowledge, question_image, tmp_path):
    model = Measuring("Sales.")
    # 250 tokens of 28x28 = 196,000 pixels; the user's 400x300 takes 120,000: 76,000 are left, room for
    # one source picture (at least 64 tokens, 50,176 pixels), and nothing after it
    pipeline = AnswerPipeline(model, knowledge, k=5, annotations_dir=tmp_path / "s", source_images=4,
                              visual_tokens=250)
    answer(pipeline, question_image)
    assert len(model.sizes) == 2 and model.sizes[0] == (400, 300)
    width, height = model.sizes[1]
    assert 50_176 <= width * height <= 76_000 and abs(width / height - 640 / 480) < 0.02  # shape kept
    pipeline = AnswerPipeline(model, knowledge, k=5, annotations_dir=tmp_path / "s", source_images=0)
    answer(pipeline, question_image)
    assert model.calls[-1][-1].images == (question_image,)  # 0: sources as text only


def test_the_tiny_qwen_sees_the_pictures_within_the_token_budget(knowledge, question_image, tmp_path, tiny_models):
    model = TransformersVisionModel.from_pretrained(LoadPlan.resolve(str(tiny_models["qwen2_5_vl"]), device="cpu"),
                                                    max_pixels=224 * 224)
    seen = []
    real_inputs = model._inputs

    def recording(turns, max_pixels):
        inputs = real_inputs(turns, max_pixels)
        seen.append(inputs)
        return inputs

    model._inputs = recording
    budget = 200
    pipeline = AnswerPipeline(model, knowledge, k=5, annotations_dir=tmp_path / "s", source_images=3,
                              visual_tokens=budget, max_pixels=224 * 224)
    answer(pipeline, question_image)
    grid = seen[-1]["image_grid_thw"]
    tokens = [int(t * h * w) // 4 for t, h, w in grid.tolist()]  # 2x2 patches merged into one token
    assert len(tokens) >= 2  # the user's image and at least one source picture
    assert sum(tokens) <= budget * 1.1, tokens  # within the budget (sides rounded to the 28-pixel grid)
    image_pad = model.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((seen[-1]["input_ids"] == image_pad).sum()) == sum(tokens)


def test_the_endpoint_sends_the_source_pictures(knowledge, question_image, tmp_path):
    with serve_openai() as (url, recorder):
        pipeline = AnswerPipeline(OpenAIEndpointModel(url, "Qwen/Qwen3-VL-8B-Instruct"), knowledge, k=5,
                                  annotations_dir=tmp_path / "s", source_images=2)
        answer(pipeline, question_image)
    parts = recorder.requests[-1]["body"]["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 3 + ["text"]
    assert parts[-1]["text"].count("picture=") == 2
