FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md alembic.ini ./
COPY orchestrator ./orchestrator
COPY participants ./participants
COPY migrations ./migrations
RUN pip install --no-cache-dir -e ".[otel]"
USER nobody
EXPOSE 8000
CMD ["saga", "serve", "--host", "0.0.0.0", "--port", "8000"]
