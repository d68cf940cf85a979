# twin-service in one image: the bridge (SUMO, sumo-gui under Xvfb, served by x11vnc and noVNC) and the
# decision API with the dashboard. docker-compose.yml runs it twice (services bridge and api) beside Redis.
#
# Two stages: "build" makes a virtual environment with the project and its wheels (eclipse-sumo, the CPU
# build of torch, websockify), slims it (scripts/slim_venv.py: one copy of SUMO's bundled libraries, symbol
# tables stripped, no headers, tests or training-only packages) and unpacks noVNC's web page; "runtime" is
# Python slim with only the X, GL and VNC libraries sumo-gui and the display need, that environment, and the
# project source, run as a non-root user. No compiler, no Node.js, no second Python; nothing is fetched at run
# time.
#
# Build arguments: PYTHON_IMAGE (the base), TORCH_INDEX_URL (where pip finds torch's CPU wheel: a mirror, or
# a local index; PyPI's own torch for Linux is the CUDA build, several GB).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# noVNC's web page from Debian's package, unpacked without its dependencies (Node.js, Debian's Python):
# websockify comes from PyPI into the environment below. binutils: strip, for slim_venv.py.
WORKDIR /novnc
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && apt-get download novnc \
 && dpkg-deb -x novnc_*.deb /novnc \
 && rm -f novnc_*.deb \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" torch==2.13.0
WORKDIR /app
# Dependencies first, in layers that survive source edits: the package is installed editable, so that the
# source copied below, with the scenarios beside it, is what runs. (An empty README stands in for the real one,
# which pip only reads as the package's long description: editing the README does not reinstall everything.)
COPY pyproject.toml ./
RUN mkdir twin_service && touch twin_service/__init__.py README.md \
 && pip install --no-cache-dir -e . websockify==0.13.0
# The live stack (bridge, API, dashboard, scenario building and recording) never imports the training and
# analysis packages (plots, statistics, the RL environments), torch's symbolic-maths dependencies, nor the JWT
# packages of websockify's token plugins (unused): they are left out, with pip itself; the commands that need
# them (train, evaluate, predictor) say so. numba and llvmlite (its LLVM, 0.2 GB) are left out too, to keep the
# image within 1.5 GB: the image runs the kernels' numpy and Python references (TWIN_NO_JIT below), the same
# decisions to the bit, slower (README, "Deciding fast").
# Bytecode is kept for what the stack's processes import (the source is copied for that; the runtime stage
# copies it again with the rest).
COPY scripts/slim_venv.py scripts/
COPY twin_service/ twin_service/
RUN pip uninstall -y matplotlib contourpy cycler fonttools kiwisolver pillow scipy pettingzoo gymnasium \
      cloudpickle farama-notifications sympy mpmath networkx jwcrypto cryptography cffi pycparser numba llvmlite \
 && python scripts/slim_venv.py /opt/venv/lib/python3.11/site-packages \
      --bytecode-of twin_service.cli,twin_service.api.app,twin_service.api.worker,twin_service.bridge.runner,\
twin_service.bridge.backends,twin_service.webstack,twin_service.policies.learned,twin_service.policies.onnx_graphs,\
twin_service.policies.per_server,twin_service.policies.af_marl,twin_service.policies.sequential,\
twin_service.policies.torch_policy,twin_service.predict.neural,twin_service.predict.registry,onnx.helper,\
onnx.numpy_helper,onnxruntime,safetensors.torch,websockify.websocketproxy \
      --keep-bytecode-under libsumo,traci,sumolib,uvicorn,starlette,fastapi,pydantic,pydantic_core,anyio,httpx,\
httpcore,h11,redis,typer,click,rich,websockify,prometheus_client,orjson,httptools,uvloop \
 && python -m pip uninstall -y pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="twin-service" \
      org.opencontainers.image.description="SUMO co-simulation digital twins: bridge with sumo-gui in the browser, decision API, live dashboard" \
      org.opencontainers.image.licenses="Apache-2.0"
# The libraries sumo-gui loads from the system (the eclipse-sumo wheel bundles the rest: FOX, GDAL, PROJ,
# fontconfig...), a font, Xvfb and x11vnc. Versions follow the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      xvfb x11vnc \
      libgl1 libglx-mesa0 libgl1-mesa-dri libx11-6 libxext6 libxrender1 libexpat1 libatomic1 libstdc++6 \
      fontconfig-config fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /usr/share/man/* /usr/share/info/* \
 && find /usr/share/doc -type f ! -name copyright -delete \
 && find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'en*' ! -name locale.alias -exec rm -rf {} + \
 && install -d -m 1777 /tmp/.X11-unix \
 && useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin twin
COPY --from=build /opt/venv /opt/venv
COPY --from=build /novnc/usr/share/novnc /usr/share/novnc
COPY --from=build /novnc/usr/share/doc/novnc /usr/share/doc/novnc
WORKDIR /app
# The source, the committed scenarios and the trained models (.dockerignore leaves out the rest).
COPY . .
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TWIN_NO_JIT=1 \
    TWIN_API_HOST=0.0.0.0 \
    TWIN_NOVNC_HOST=0.0.0.0
# The slimmed environment still loads what the stack runs (a broken library fails the build, not the stack).
RUN python -c "import numpy, torch, libsumo, pyproj, uvloop, httptools, hiredis, orjson, twin_service.api.app, \
twin_service.bridge.runner; torch.nn.Linear(4, 2)(torch.ones(1, 4)); numpy.linalg.inv(numpy.eye(3))"
USER 10001
EXPOSE 8000 6080
# The api service's command; the bridge service runs `python -m twin_service.webstack up ...`.
CMD ["twin-service", "api"]
