"""Every rule the suite knows, by name: one per torch.optim class (its name in lower case) and the documents'
textbook forms."""
from __future__ import annotations

from reference.declarations import Rule
from reference.rules import TORCH_RULES
from reference.textbook import TEXTBOOK_RULES

RULES: dict[str, Rule] = {r.name: r for r in TORCH_RULES + TEXTBOOK_RULES}


def get_rule(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise KeyError(f"unknown rule {name!r}; known rules: {', '.join(RULES)}") from None
