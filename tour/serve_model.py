"""The README tour's serving example: resolve production, instrument, feed two topics, scrape."""

import os
import random

import torch
from prometheus_client import CollectorRegistry, generate_latest

from examples.multimodal import (
    Preprocessor,
    build_model,
    load_digits_images,
    load_texts,
    load_weights,
)
from instrumentation import (
    bind_request_context,
    configure_logging,
    instrument,
    start_metrics_server,
)
from instrumentation.drift import ReferenceProfile, build_monitors
from registry.client import RegistryClient

configure_logging()                                   # structlog JSON lines on stdout
client = RegistryClient("http://127.0.0.1:8080", os.environ["MMGOV_TOKEN"])
live = client.resolve("mm-clip", "production")        # ETag-cached: polls get 304
client.verify_weights(live.weights_path, live.weights_sha256)
model = build_model(live.config).eval()
load_weights(model, live.weights_path)

_, blob = client.get_reference("mm-clip", live.version)
monitors = build_monitors(ReferenceProfile.from_bytes(blob), window=64,
                          model_name="mm-clip", version=live.version)
metrics = CollectorRegistry()
handle = instrument(model, model_name="mm-clip", version=live.version,
                    config_hash=live.config_hash, prometheus_registry=metrics, drift=monitors)
server = start_metrics_server(8001, registry=metrics)  # Prometheus scrapes :8001/metrics

preprocess = Preprocessor.from_config(live.config)
images, _ = load_digits_images(64)
rng = random.Random(0)  # noqa: S311 (a reproducible request stream, not a secret)
for topic in ("captions", "finance"):                 # in-distribution text, then a topic change
    texts = rng.choices(load_texts(topic), k=64)
    with torch.inference_mode():
        for i in range(0, 64, 16):
            bind_request_context(request_id=f"{topic}-{i}")  # carried into every logged event
            model(**preprocess(list(images[i:i + 16]), texts[i:i + 16]))
    monitors["text_encoder"].flush()
    drift = monitors["text_encoder"].snapshot()
    verdict = "ALARM" if drift.alarm else "no alarm"
    print(f"{topic}: text_encoder drift score {drift.score:.2f} ({verdict}; threshold 1.0)")
print(f"served mm-clip v{live.version} (config {live.config_hash[:12]}); from :8001/metrics:")
for line in generate_latest(metrics).decode().splitlines():
    if line.startswith("mmgov_module_calls_total"):
        print(line)
handle.detach()
server.shutdown()
