"""Keep secrets out of what optkit writes: reports, cache metadata.

Reports get attached to CI runs and cache folders get copied between machines, so neither may
carry a token. Two nets: the values of environment variables whose names look secret
(``HF_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ...), and well-known token shapes (Hugging Face,
GitHub, OpenAI-style, AWS access key ids, passwords in URLs), wherever a recipe value or a
library message might have carried them.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["REDACTED", "redact", "secret_env_values"]

REDACTED = "<redacted>"

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH", re.I)
_TOKEN_SHAPES = re.compile(
    r"hf_[A-Za-z0-9]{20,}"  # Hugging Face
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI-style API keys
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
)
_URL_PASSWORD = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")


def secret_env_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like secrets (8+ characters, longest first)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """A copy of ``value`` (dicts, lists, strings) with secrets replaced by ``<redacted>``."""
    secrets = secret_env_values() if secrets is None else secrets
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, REDACTED)
        value = _URL_PASSWORD.sub(f"{REDACTED}@", value)
        return _TOKEN_SHAPES.sub(REDACTED, value)
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    return value
