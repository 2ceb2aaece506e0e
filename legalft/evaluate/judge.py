"""LLM-as-judge through any OpenAI-compatible endpoint, with a short legal rubric and structured output.

The judge is asked for a JSON object that a schema describes (``response_format`` json_schema); its
reply is validated with pydantic. A reply that does not fit is recorded as ``off_schema`` with what
it said, never as a score. The judge's model and prompt are stored with the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

JUDGE_PROMPT = (
    "You grade an answer to a question on UK legislation against a reference answer. For each criterion "
    "give 1 (yes) or 0 (no): correct (the answer agrees with the reference on the law), cites_right_provision "
    "(it cites the provision the reference relies on), invents_nothing (it cites no provision or rule that "
    "does not exist), answers_question (it answers what was asked). Add a one-sentence rationale. "
    "Reply with the JSON object only."
)
CRITERIA = ("correct", "cites_right_provision", "invents_nothing", "answers_question")


class JudgeScores(BaseModel):
    """The judge's reply; anything else is off-schema."""

    model_config = ConfigDict(extra="forbid")
    correct: int = Field(ge=0, le=1)
    cites_right_provision: int = Field(ge=0, le=1)
    invents_nothing: int = Field(ge=0, le=1)
    answers_question: int = Field(ge=0, le=1)
    rationale: str = Field(max_length=2000)


def judge_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {name: {"type": "integer", "minimum": 0, "maximum": 1} for name in CRITERIA}
    properties["rationale"] = {"type": "string"}
    return {"type": "object", "properties": properties, "required": [*CRITERIA, "rationale"],
            "additionalProperties": False}


@dataclass
class Judge:
    """A judge endpoint and the prompt it is given (both recorded with the run)."""

    endpoint: Any
    prompt: str = JUDGE_PROMPT
    timeout: float = 120.0

    def describe(self) -> dict[str, Any]:
        return {"endpoint_id": self.endpoint.id, "name": self.endpoint.name, "model": self.endpoint.model,
                "prompt": self.prompt, "schema": judge_schema()}

    def grade(self, question: str, reference: str, answer: str) -> dict[str, Any]:
        """{"status": "scored", "score", criteria..., "rationale"} or {"status": "off_schema" | "error", ...}."""
        import openai

        from legalft.chat import make_client, server_error_message

        messages = [{"role": "system", "content": self.prompt},
                    {"role": "user", "content": f"Question:\n{question}\n\nReference answer:\n{reference}\n\n"
                                                f"Answer to grade:\n{answer}"}]
        client = make_client(self.endpoint, timeout=self.timeout)
        try:
            completion = client.chat.completions.create(
                model=self.endpoint.model, messages=messages, temperature=0.0, max_tokens=400,
                response_format={"type": "json_schema",
                                 "json_schema": {"name": "legal_grade", "schema": judge_schema(), "strict": True}},
            )
        except openai.APIStatusError as exc:
            return {"status": "error", "error": f"HTTP {exc.status_code}: {server_error_message(exc)}"}
        except openai.OpenAIError as exc:
            return {"status": "error", "error": exc.__class__.__name__}
        finally:
            client.close()
        raw = (completion.choices[0].message.content if completion.choices else None) or ""
        return parse_grade(raw)


def parse_grade(raw: str) -> dict[str, Any]:
    """A judge's reply as a score, or as ``off_schema`` with the reason and the start of what it said."""
    try:
        scores = JudgeScores.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError, TypeError) as exc:
        reason = "not JSON" if isinstance(exc, json.JSONDecodeError) else \
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()) \
            if isinstance(exc, ValidationError) else str(exc)
        return {"status": "off_schema", "reason": reason, "raw": raw[:500]}
    values = scores.model_dump()
    return {"status": "scored", "score": sum(values[c] for c in CRITERIA) / len(CRITERIA), **values}
