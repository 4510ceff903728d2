# lrun in a container: the same image runs the master and the workers.
#   docker build -t lrun .
#   docker run --rm -v "$PWD/scenarios:/scenarios" lrun /scenarios/quickstart.yaml          # one process
# See the README ("Distributed runs") for master and workers in containers and on Kubernetes.
FROM python:3.12-slim

WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
RUN pip install --no-cache-dir . && rm -rf /src

# an unprivileged user; the master's port
RUN useradd --create-home --uid 10001 lrun
USER lrun
WORKDIR /home/lrun
EXPOSE 5557
ENTRYPOINT ["lrun"]
CMD ["--help"]
