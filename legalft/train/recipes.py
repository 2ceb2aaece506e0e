"""Training presets: ``recipes/*.yaml`` in the project, each a ``TrainConfig`` as data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from legalft.home import project_root
from legalft.train.config import TrainConfig, TrainConfigError


@dataclass
class RecipeInfo:
    """What the Train page lists for a recipe, without validating it."""

    name: str
    path: Path
    description: str
    base_model: str
    method: str


def recipes_dir() -> Path:
    return project_root() / "recipes"


def list_recipes() -> list[RecipeInfo]:
    """The bundled recipes, by name."""
    infos = []
    for path in sorted(recipes_dir().glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        infos.append(
            RecipeInfo(
                name=path.stem,
                path=path,
                description=str(data.get("description") or ""),
                base_model=str(data.get("base_model") or ""),
                method=str(data.get("method") or "lora"),
            )
        )
    return infos


def recipe_path(name: str) -> Path:
    """The file of a recipe given by name (``smoke``) or path (``my/recipe.yaml``)."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    path = recipes_dir() / f"{name}.yaml"
    if not path.exists():
        names = ", ".join(info.name for info in list_recipes())
        raise TrainConfigError([f"no recipe {name!r}; recipes: {names}"])
    return path


def load_recipe(name: str) -> TrainConfig:
    """The recipe as a validated ``TrainConfig``; its name becomes the run's default name."""
    path = recipe_path(name)
    config = TrainConfig.load(path)
    if not config.name:
        config.name = path.stem
    return config
