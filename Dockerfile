# ttscale GPU worker image: a Prefect worker that runs `ttscale-batch` and `ttscale-shard` flow runs
# with vLLM in-process on the GPU, or against a `vllm serve` fleet (engine.kind=openai).
#
# Build:  docker build -t ttscale-worker .
# Run:    docker run --gpus all -e PREFECT_API_URL=http://prefect-server:4200/api ttscale-worker
#
# Base: the official vLLM image. It already carries CUDA, torch and a vllm build that matches them;
# installing vllm from PyPI on top would download and replace that stack. The tag is pinned (never
# :latest) to the vllm line pyproject.toml's `gpu` extra asks for (vllm>=0.32).
FROM vllm/vllm-openai:v0.33.0

# The base image's ENTRYPOINT is the OpenAI server (`vllm serve`); this image is a worker instead.
ENTRYPOINT []

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Models prepared with `ttscale models prepare` and other ttscale caches live here.
    TTSCALE_HOME=/var/lib/ttscale

WORKDIR /app

# Dependencies first, so code edits do not invalidate this layer. `pip install '.[gpu]'` would
# reinstall vllm (see above), so install the project itself plus the `gpu` extra's other
# packages. constraints.txt is the tested set (`make lock`); the base image's own packages
# (torch, vllm and what they pin) win over it, every other package is installed at its locked
# version. pyproject.toml pins prefect<3.8 (it needs a fastapi that vllm rejects) and
# sqlalchemy<2.1 (prefect 3.7's scheduler fails with 2.1).
COPY pyproject.toml README.md constraints.txt ./
COPY ttscale/ ./ttscale/
COPY flows/ ./flows/
RUN python3 -m pip freeze | sed 's/[=@ ].*//' | tr 'A-Z_' 'a-z-' > /tmp/base-packages \
    && grep -v '^#' constraints.txt | grep -v '^$' \
       | awk -F'==' 'NR==FNR {base[$1]=1; next} !(tolower($1) in base)' /tmp/base-packages - \
       > /tmp/constraints-worker.txt \
    && python3 -m pip install -c /tmp/constraints-worker.txt . "gguf>=0.10" "accelerate>=1.0" \
    && python3 -c "import vllm, prefect, ttscale, flows.batch"

# The deployment definitions: their `pull` step sets the working directory to /app, where the
# flow code above lives, so flow runs need no code download.
COPY prefect.yaml ./

# Run as an unprivileged user; it owns /app (the default output and ledger live under
# /app/ttscale-out) and TTSCALE_HOME.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin ttscale \
    && mkdir -p /app/ttscale-out /var/lib/ttscale \
    && chown -R ttscale:ttscale /app /var/lib/ttscale
USER ttscale

# PREFECT_API_URL is not baked in: it comes from the environment at run time (compose, Kubernetes,
# `docker run -e`). S3 settings likewise: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
# The pool is a process pool locally and the default here; Kubernetes uses its own worker image
# (infra/k8s/worker.yaml) and this image for the flow-run Jobs it creates.
CMD ["prefect", "worker", "start", "--pool", "gpu-pool"]
