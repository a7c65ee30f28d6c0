"""Every rule the suite knows, by name: one per torch.optim class (its name in lower case; L-BFGS's in
``reference/lbfgs.py``), the documents' textbook forms, the variants of those rules that other libraries follow
(``reference/variants.py``), optax's own forms where optax implements a different rule
(``reference/optax_rules.py``), and optimizers torch.optim does not ship (``reference/modern_rules.py``: lion,
adopt, ademamix, adan, lamb;
``reference/schedulefree_rules.py``: schedulefree_sgd, schedulefree_adamw)."""
from __future__ import annotations

from reference.declarations import Rule
from reference.lbfgs import LBFGS
from reference.modern_rules import MODERN_RULES
from reference.optax_rules import OPTAX_RULES
from reference.rules import TORCH_RULES
from reference.schedulefree_rules import SCHEDULEFREE_RULES
from reference.textbook import TEXTBOOK_RULES
from reference.variants import VARIANT_RULES

RULES: dict[str, Rule] = {r.name: r for r in (*TORCH_RULES, LBFGS, *TEXTBOOK_RULES, *VARIANT_RULES, *OPTAX_RULES,
                                              *MODERN_RULES, *SCHEDULEFREE_RULES)}


def get_rule(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise KeyError(f"unknown rule {name!r}; known rules: {', '.join(RULES)}") from None
