# GPU host image: CUDA runtime, the app as a non-root user, model cache and data as volumes. gcc and the
# Python headers are there for Triton, which builds its kernel launcher when the static decoder is
# compiled at load time (without them the decoder runs uncompiled, more slowly, and logs why).
# Build: docker build -t multimodal-assistant .
# Run:   docker run --gpus all -p 7860:7860 -v hf-cache:/home/app/.cache/huggingface -v kb:/data \
#          -v compiled:/home/app/.cache/torchinductor multimodal-assistant
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    ASSISTANT_DATA_DIR=/data \
    ASSISTANT_UI__HOST=0.0.0.0 \
    ASSISTANT_UI__PORT=7860 \
    TORCHINDUCTOR_CACHE_DIR=/home/app/.cache/torchinductor

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv python3.12-dev gcc libc6-dev \
       curl libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 app \
    && mkdir -p /data /home/app/.cache/huggingface /home/app/.cache/torchinductor \
    && chown -R app:app /data /home/app/.cache

WORKDIR /home/app/assistant
COPY --chown=app:app requirements.txt ./
RUN python3.12 -m venv /opt/venv && /opt/venv/bin/pip install -r requirements.txt
COPY --chown=app:app assistant ./assistant
COPY --chown=app:app retrieval ./retrieval
COPY --chown=app:app prompts ./prompts
COPY --chown=app:app ui ./ui
COPY --chown=app:app app.py ./

USER 1000:1000
ENV PATH=/opt/venv/bin:$PATH
VOLUME ["/data", "/home/app/.cache/huggingface", "/home/app/.cache/torchinductor"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--output", "/dev/null", "http://127.0.0.1:7860/"]
CMD ["python", "-m", "ui"]
