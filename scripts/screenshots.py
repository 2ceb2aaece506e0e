"""Take the README's screenshots: a demo LEGALFT_HOME, the real app, the system Chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Registers the reference set, runs the smoke recipe to the end on this machine, runs a managed job
against the local Token Factory stand-in (tests/token_factory_server.py; the demo says so), then
captures each page.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="legalft-demo-")) / "home"
    os.environ["LEGALFT_HOME"] = str(home)
    os.environ["HF_HUB_OFFLINE"] = "1"

    from token_factory_server import DEFAULT_KEY, start_server

    standin = start_server(phase_seconds=0.3, deploy_seconds=0.3)
    os.environ["LEGALFT_TOKEN_FACTORY_URL"] = standin.base_url
    os.environ["NEBIUS_API_KEY"] = DEFAULT_KEY

    from legalft import managed as tf
    from legalft.data.registry import register_dataset
    from legalft.data.sanitize import sanitize_file
    from legalft.data.split import split_file
    from legalft.train import load_recipe, start_training, wait_for_job

    clean = home.parent / "clean.jsonl"
    report = sanitize_file(ROOT / "data" / "legislation_qa_clean.jsonl", clean)
    dataset = register_dataset(clean, "legislation_qa_clean.jsonl", report.to_dict())
    train, val, _ = split_file(dataset.path, home.parent / "split", 0.1, group_by_act=True)
    config = load_recipe("smoke").with_overrides({"sft.num_train_epochs": 3, "sft.eval_strategy": "steps",
                                                  "sft.eval_steps": 8, "validation_file": str(val)})
    from legalft import costs

    estimate = round(costs.one_time_gpu_cost().cost, 2)  # what the Train page records
    local = start_training(config, train, validation_path=val, dataset_id=dataset.id, name="smoke",
                           estimated_cost=estimate)
    managed = tf.launch_job(train, tf.LaunchConfig(n_epochs=4, suffix="uk-legal"), validation=val)
    tf.wait_for_job(managed.id, poll_seconds=0.5, timeout=120)
    endpoint = tf.deploy_checkpoint(managed.id, name="uk-legal")
    tf.poll_deployment(endpoint.model, wait=True, poll_seconds=0.3, timeout=30)
    wait_for_job(local.id, timeout=600)

    from browser import chromium_page, streamlit_server

    shots = [("home", "/", None), ("dataset", "/dataset", None), ("train", "/train", None),
             ("monitor-local", f"/monitor?job={local.id}", "step"), ("monitor-managed", f"/monitor?job={managed.id}", "Events"),
             ("costs", "/costs", None), ("chat", "/chat", None)]
    with streamlit_server(home) as server, chromium_page(viewport=(1400, 1100)) as page:
        for name, path, text in shots:
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            page.locator('[data-testid="stAppViewContainer"]').wait_for()
            if text:
                page.get_by_text(text).first.wait_for()
            if name == "chat":
                box = page.get_by_placeholder(re.compile("Ask about UK legislation"))
                box.fill("What does section 1 of the Advanced Research and Invention Agency Act 2022 provide?")
                box.press("Enter")
                page.locator('[data-testid="stChatMessage"]').nth(1).wait_for()
            time.sleep(2.5)  # charts and streamed answers finish drawing
            page.screenshot(path=str(out / f"{name}.png"), full_page=False)
            print(f"wrote {out / (name + '.png')}")
    standin.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
