"""What each test checks, in the categories the conformance report and the matrix speak of: the *update rule*
(trajectories and the rule's properties), the *API contract* (state_dict, closure, zero_grad, parameter groups),
*side effects* (a step that writes into .grad or replaces parameters), and *validation* (refusing hyperparameters
outside the rule's domain, dense gradients for a sparse rule). Each test carries its category as a pytest marker
(``update_rule``, ``contract``, ``side_effects``, ``validation``), so that an implementation that does not promise
torch's argument checks is judged on the rest with ``-m "not validation"``. A failure of the update rule that flushing
subnormal numbers explains is counted under *subnormals* in the report."""
from __future__ import annotations

#: test function name prefix -> category (the rest: update rule)
BY_TEST = {
    "test_rejects_hyperparameters_outside": "validation",
    "test_accepts_hyperparameters_inside": "validation",
    "test_dense_gradients_are_rejected": "validation",
    "test_step_never_writes_grad": "side effects",
    "test_state_dict_round_trip": "API contract",
    "test_step_with_closure": "API contract",
    "test_zero_grad_leaves": "API contract",
    "test_without_zero_grad_gradients_accumulate": "API contract",
    "test_per_group_hyperparameters": "API contract",
    "test_add_param_group": "API contract",
}
MARKERS = {"update rule": "update_rule", "API contract": "contract", "side effects": "side_effects",
           "validation": "validation"}
DESCRIPTIONS = {
    "update_rule": "the test judges the update rule (trajectories, the rule's properties)",
    "contract": "the test judges the torch.optim API contract (state_dict, closure, zero_grad, parameter groups)",
    "side_effects": "the test judges side effects of a step (writes into .grad, replaced parameters)",
    "validation": "the test judges argument validation (out-of-domain hyperparameters, dense gradients rejected)",
}


def of_test(name: str) -> str:
    """The category of the test function ``name`` (parametrization stripped)."""
    name = name.split("[")[0]
    return next((c for prefix, c in BY_TEST.items() if name.startswith(prefix)), "update rule")


def of_failure(failure: dict) -> str:
    """The category a failure counts under: its test's, *subnormals* for an update-rule failure that flushing
    subnormal numbers explains, or *API contract* for one explained by a param group's hyperparameter ignored for
    the constructor's (``assertions.ignored_group_values``)."""
    category = of_test(failure["test"].split("::")[-1])
    if category == "update rule" and failure.get("subnormals") == "flushing explains it":
        return "subnormals"
    if category == "update rule" and failure.get("ignored group hyperparameters"):
        return "API contract"
    return category
