"""The Train page's settings are defined once, against TrainConfig: every one reaches the config."""

from __future__ import annotations

import pytest

from legalft.train import list_recipes, load_recipe
from legalft.train.form import CLOUD_SETTINGS, form_values, setting_value


def _changed(setting, value):
    if setting.kind is bool:
        return not value
    if setting.choices:
        return next(c for c in setting.choices if c != value)
    if setting.kind is str:
        return "some/other-model"
    return setting.kind(value * 2 if value else 1)


@pytest.mark.parametrize("recipe", [r.name for r in list_recipes()])
def test_every_setting_shows_the_recipe_value_and_a_change_reaches_the_config(recipe):
    config = load_recipe(recipe)
    values = form_values(config)
    for setting in CLOUD_SETTINGS:
        assert values[setting.key] == setting_value(config, setting.key)
        if setting.key in ("method", "precision"):
            continue  # a contradiction with the machine (QLoRA on a CPU) is refused by design
        new = _changed(setting, values[setting.key])
        changed = config.with_overrides({setting.key: new})
        assert setting_value(changed, setting.key) == new, f"{setting.key} does nothing"


def test_the_gradient_checkpointing_box_shows_and_sets_the_current_key():
    config = load_recipe("gemma-4-e4b-lora")
    assert config.sft["activation_checkpointing"] is True
    box = next(s for s in CLOUD_SETTINGS if s.label == "Gradient checkpointing")
    assert form_values(config)[box.key] is True  # shown checked where the recipe has it on
    off = config.with_overrides({box.key: False})
    assert off.sft["activation_checkpointing"] is False  # and unchecking it turns it off
