"""Time legalft.models.merged_for_serving on the smoke model: the first call merges, the second hits the cache.

Run: PYTHONPATH=. HF_HUB_OFFLINE=1 python bench/merge_cache.py   (prints the ratio measured in this run)
"""
import os
import tempfile
import time
from pathlib import Path

root = Path(tempfile.mkdtemp())
os.environ["LEGALFT_HOME"] = str(root / "home")
import torch
import transformers
from peft import LoraConfig, get_peft_model

from legalft import models
from legalft.train.smoke import build_smoke_model

base = build_smoke_model(root / "base")
torch.manual_seed(0)
m = get_peft_model(transformers.AutoModelForCausalLM.from_pretrained(str(base)),
                   LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
adapter = root / "run" / "adapter"; m.save_pretrained(str(adapter))
transformers.AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(adapter))
t = time.perf_counter(); models.merged_for_serving(adapter); first = time.perf_counter() - t
t = time.perf_counter(); models.merged_for_serving(adapter); second = time.perf_counter() - t
print(f"first (merge) {first:.2f} s, second (cache hit) {second*1000:.1f} ms, ratio {first/second:.0f}x")
