"""What reading each library's source showed about a row whose updates differ from its rule: the verdict a user can
act on (``optimizers/matrix_report.TAXONOMY``), the one-line reason, and for a *likely bug* the offending upstream
line, at the version pinned in ``requirements-matrix.txt``. Keyed by the row's class (``optimizers/ecosystem.py``)
or its entry's name (``optimizers/ecosystem_modern.py``). Hand-verified: each line was read at that version."""
from __future__ import annotations

ASSESSMENTS: dict[str, dict] = {
    # ---- item 1 -----------------------------------------------------------------------------------------------------
    "optax.radam": {
        "verdict": "convention",
        "reason": "ε is added to the bias-corrected root: optax steps r_t·m̂/(√v̂ + ε) with v̂ = v_t/(1 − β2^t) "
                  "(transform.py:849, on nu_hat from :876), torch's rule r_t·m̂·√(1 − β2^t)/(√v_t + ε), i.e. "
                  "r_t·m̂/(√v̂ + ε/√(1 − β2^t)); not precision: with ε = 1e-3 and 0.1 the rule is off by 2e-7 and 9e-6 "
                  "while the ε-on-√v̂ formula reproduces optax to ≤1e-16, and the matrix counterexample "
                  "(−0.9949741788874563) exactly; the rectification test is ρ_t ≥ 5 (transform.py:878) against the "
                  "rule's ρ_t > 5 (equal unless ρ_t = 5 exactly)",
        "source": "optax/_src/transform.py:849 "
                  "(https://github.com/google-deepmind/optax/blob/v0.2.8/optax/_src/transform.py#L849)",
        "variant": "optax_radam",
    },
    # ---- heavyball 3.2.1 (wheel, not installed; read unpacked) ------------------------------------------------------
    "heavyball.AdamW": {
        "verdict": "convention",
        "reason": "ε is a floor of the root, not a term: the fused Adam step divides by eps_sqrt(v̂) = "
                  "v̂.clamp_min(0).sqrt().clamp(min=ε) = max(√v̂, ε) (utils.py:421); against adamw_eps_floor the rest "
                  "is precision (≤3.4e-8 at ε = 0.5, where adamw is off by 0.17): the learning rate becomes a float32 "
                  "tensor in the warm-up formula base_lr * step / step.clamp(...) with an int64 step "
                  "(chainable.py:2594; lr = 1e-3 enters as 0.0010000000474974513, even with storage_dtype='float64', "
                  "unless torch's default dtype is float64), and m, v are stored in storage_dtype='float32' "
                  "(chainable.py:178); side effect: step() sets p.grad = None (consume_grad=True, utils.py:1660; "
                  "documented in its README; pass consume_grad=False); the committed row tried no variant "
                  "(tried_variants: []), re-run it with adamw_eps_floor, which ecosystem.py now lists",
        "source": "heavyball/utils.py:421 (eps_sqrt); heavyball/chainable.py:2594 (lr in float32)",
        "variant": "adamw_eps_floor",
    },
    "heavyball.NAdam": {
        "verdict": "convention",
        "reason": "ε is a floor here too: _nadam_compute_update divides by eps_sqrt(v̂) = max(√v̂, ε) "
                  "(utils.py:401 → :421), with float32 lr (chainable.py:2594) and float32 state (storage_dtype), "
                  "and p.grad cleared (consume_grad); NOT explained by any convention: with "
                  "decoupled_weight_decay=False (its default) and λ > 0 it adds λθ to the gradient (utils.py:368) and "
                  "then subtracts λθ from the normalised update (_nadam_finish_weight_decay, utils.py:383): "
                  "θ ← θ − γ(nadam(g + λθ) − λθ) (g = 0, θ = 1, λ = 0.5, γ = 0.1: 0.9444 where the rule gives "
                  "0.8944, exactly +γλθ); the docstring cites Dozat's report, which has no weight decay, and "
                  "heavyball's docs do not define coupled decay, so this is reported, not called a bug; run the row "
                  "with decoupled_weight_decay=True (then it differs from nadam only by the ε floor and float32)",
        "source": "heavyball/utils.py:383 (coupled decay subtracted); heavyball/utils.py:421 (ε floor)",
        "variant": "nadam_eps_floor (new): nadam with θ ← θ − γ m̂ / max(√v̂, ε) in place of θ − γ m̂ / (√v̂ + ε)",
    },
    "heavyball.SGD": {
        "verdict": "convention",
        "reason": "decoupled weight decay: update_param_ applies θ ← θ(1 − γλ) − γb (utils.py:2445) with b = βb + g "
                  "(utils.py:769), the existing sgdw variant; measured against sgdw the rest is float32 (≤2.4e-7 at "
                  "γ = 1, μ = 0.9, λ = 1: float32 momentum buffer, float32 lr from chainable.py:2594); the committed "
                  "sgdw run ended without a report ('crash', output 'ssssssssssFF..'), re-run it; two more "
                  "differences that are not the rule's: heavyball's default beta = 0.9 (__init__.py:22) against the "
                  "rule's momentum 0, so the printed-value tests that construct it with lr only ran heavy-ball "
                  "momentum (GD on x², η = 0.2: x_10 = 5.1668 with β = 0.9, 0.0605 with β = 0, both reproduced) — "
                  "the mapping should pass momentum = 0 when a test leaves it at the rule's default; and step() sets "
                  "p.grad = None (consume_grad, documented)",
        "source": "heavyball/utils.py:2445",
        "variant": "sgdw",
    },
    # ---- pytorch-optimizer 4.1.0 --------------------------------------------------------------------------------
    "pytorch_optimizer.AdaDelta": {
        "verdict": "side effects",
        "reason": "the update is the rule's (adadelta.py:157-164); every update-level counterexample has a group "
                  "whose maximize differs from the constructor's: maximize is read from self.maximize "
                  "(adadelta.py:45, used at :92 and :140), not from the param group; p.grad is negated in place "
                  "(base/optimizer.py:713) and coupled decay is added into p.grad (base/optimizer.py:209); "
                  "validation: rho = 1 is refused (validate_range [0, 1), adadelta.py:41) and lr < 0 raises "
                  "NegativeLRError, not ValueError",
        "source": "pytorch_optimizer/optimizer/adadelta.py:45",
        "variant": "",
    },
    "pytorch_optimizer.AdaMax": {
        "verdict": "convention",
        "reason": "t is the group's step count: group['step'] += 1 once per step() (adamax.py:169) and 1 − β1^t "
                  "uses it (:173), so a parameter without a gradient at some step is corrected for steps it did not "
                  "take (matrix counterexample: gradients −1, None, −1 give −0.99660, the per-parameter t −0.99600); "
                  "maximize is read from the constructor (adamax.py:45), not the group (the mapping declares it "
                  "constructor-only), and p.grad is negated in place (side effect)",
        "source": "pytorch_optimizer/optimizer/adamax.py:169",
        "variant": "adamax_group_step",
    },
    "pytorch_optimizer.RAdam": {
        "verdict": "likely bug",
        "reason": "with weight_decouple=False weight decay is silently dropped, against its docstring "
                  "('weight_decouple: Apply weight decay to parameters instead of adding it to the gradient', "
                  "radam.py:17): the foreach path (the CPU default) decays only if group['weight_decouple'] "
                  "(radam.py:110) and the per-parameter path calls apply_weight_decay(grad=None) (radam.py:153), so "
                  "λ = 0 and λ = 1 give identical θ (checked, both paths); besides: degenerated_to_sgd=False by "
                  "default (radam.py:38; rt = −1 at base/optimizer.py:344) leaves θ (and the decoupled decay) "
                  "unchanged while ρ_t < 5 (the first 5 steps at β2 = 0.999) where the paper and the rule take "
                  "θ − γm̂ — a documented option: fix the mapping with degenerated_to_sgd=True; t is the group's step "
                  "count (radam.py:186); maximize is read from the constructor and p.grad negated in place",
        "source": "pytorch_optimizer/optimizer/radam.py:110 "
                  "(https://github.com/kozistr/pytorch_optimizer/blob/v4.1.0/pytorch_optimizer/optimizer/radam.py#L110); "
                  "pytorch_optimizer/optimizer/radam.py:153 "
                  "(https://github.com/kozistr/pytorch_optimizer/blob/v4.1.0/pytorch_optimizer/optimizer/radam.py#L153)",
        "variant": "",
    },
    "pytorch_optimizer.SGDW": {
        "verdict": "convention",
        "reason": "weight_decouple=True by default (sgd.py:186) decays θ ← θ(1 − γλ) before the step: the existing "
                  "sgdw variant (measured: ≤9e-16 over lr, momentum, dampening, λ, nesterov, foreach on/off); "
                  "maximize is read from self.maximize (sgd.py:197), not the group (the mapping declares it "
                  "constructor-only); side effects: p.grad negated in place and, with nesterov, grad.add_(buf) into "
                  "p.grad (sgd.py:317); validation: momentum = 1 refused (sgd.py:194), NegativeLRError for lr < 0",
        "source": "pytorch_optimizer/optimizer/sgd.py:186",
        "variant": "sgdw",
    },
    "pytorch_optimizer.QHAdam": {
        "verdict": "precision",
        "reason": "with nus = (1, 1) the formula is Adam's, but the bias-correction weights (1 + β + β² + …, whose "
                  "reciprocals weight the EMA updates) are float32 tensors (qhadam.py:83-84) in float64 runs: "
                  "making them float64 takes the error against the adam rule from 9.2e-8 to 6.7e-16; the remaining "
                  "update counterexamples are maximize read from the constructor (qhadam.py:49), and p.grad is "
                  "negated / L2-decayed in place (side effects)",
        "source": "pytorch_optimizer/optimizer/qhadam.py:83",
        "variant": "",
    },
    # ---- torch-optimizer 0.3.0 (identical to tag v0.3.0) -------------------------------------------------------
    "torch_optimizer.RAdam": {
        "verdict": "likely bug",
        "reason": "per-group learning rates are lost across groups with the same betas: the step-size cache "
                  "group['buffer'] is one list shared by every group that does not set other betas (defaults, "
                  "radam.py:82; own buffers only at :71-75), keyed by the step alone (:141-143), and the cached "
                  "step_size has lr folded in (:155-169), so the first group's lr is used for all (checked: groups "
                  "with lr 1e-3 and 1e-9 take the same step; matrix: an lr = 0 group moved −1 → 0); the reference "
                  "code it cites (LiyuanLucasLiu/RAdam, docstring :37) caches lr-free step sizes and multiplies by "
                  "group['lr'] when applying them; otherwise decoupled decay (radam_decoupled), float32 arithmetic "
                  "(p.data.float(), :117) → precision, lr = 0 refused (:48, validation)",
        "source": "torch_optimizer/radam.py:155 "
                  "(https://github.com/jettify/pytorch-optimizer/blob/v0.3.0/torch_optimizer/radam.py#L155)",
        "variant": "radam_decoupled",
    },
    "torch_optimizer.SGDW": {
        "verdict": "likely bug",
        "reason": "weight decay subtracts the constant γλ from every element (p.data.add_(weight_decay, "
                  "alpha=-lr)) instead of γλθ, against the paper it cites (Loshchilov & Hutter, arXiv 1711.05101, "
                  "sgdw.py:12/30: θ ← θ − ηλθ): θ = 10, g = 0, γ = 0.1, λ = 0.5 gives 9.95, not 9.5; reported "
                  "upstream as jettify/pytorch-optimizer issue #454 (fix PR #455, open); the decay is also applied "
                  "after the momentum step; lr = 0 refused (sgdw.py:45, validation)",
        "source": "torch_optimizer/sgdw.py:121 "
                  "(https://github.com/jettify/pytorch-optimizer/blob/v0.3.0/torch_optimizer/sgdw.py#L121)",
        "variant": "",
    },
    # ---- optax 0.2.8 (identical to tag v0.2.8) ----------------------------------------------------------------
    "optax.rmsprop": {
        "verdict": "convention",
        "reason": "optax's rmsprop puts ε inside the root by default, which its docstring warns differs from PyTorch "
                  "(alias.py:2007-2012); the existing optax_rmsprop rule encodes it, and its run left only NaN "
                  "counterexamples: centered=True with bias_correction=True makes ν̂ − μ̂² = g² − g² at t = 1 a "
                  "rounding residue, negative for ~10% of gradients (20 of 200 here), and √ of it (transform.py:224; "
                  "rsqrt at :218) is NaN even with lr = 0; the rule's ν̂ − μ̂² is a variance (≥ 0) "
                  "and θ stays finite, so NaN is a deviation: the one torch's RMSprop has too (known deviation "
                  "rmsprop-centered-negative-variance)",
        "source": "optax/_src/alias.py:2007 "
                  "(https://github.com/google-deepmind/optax/blob/v0.2.8/optax/_src/alias.py#L2007)",
        "variant": "optax_rmsprop",
    },
    "optax.nadam": {
        "verdict": "different formula",
        "reason": "optax documents NAdam without Dozat's momentum schedule: m̂ = β1 m_t/(1 − β1^{t+1}) + "
                  "(1 − β1) g_t/(1 − β1^t) (nadam docstring, alias.py:544; nadam = adam(nesterov=True), :532, "
                  "computed at transform.py:287-292), i.e. μ_t ≡ β1, where the rule (torch.optim.NAdam) has "
                  "μ_t = β1(1 − ½·0.96^{tψ}), ψ = momentum_decay (held at 0.004; ψ = 0 gives β1/2, not β1); the "
                  "μ ≡ β1 formula reproduces optax exactly (5 steps, two hyperparameter sets) and the matrix "
                  "counterexample (−0.9970526 against −0.9978871)",
        "source": "optax/_src/alias.py:544 "
                  "(https://github.com/google-deepmind/optax/blob/v0.2.8/optax/_src/alias.py#L544)",
        "variant": "nadam_constant_mu (new): nadam with μ_t = μ_{t+1} = β1: m̂ = β1 m_t/(1 − β1^{t+1}) + "
                   "(1 − β1) g/(1 − β1^t), v̂ = v_t/(1 − β2^t), θ ← θ − γ m̂/(√v̂ + ε)",
    },
    "optax.rprop": {
        "verdict": "likely bug",
        "reason": "scale_by_rprop returns the previous call's update: the lambda at transform.py:950 is mapped over "
                  "(sign, prev_updates, state.prev_updates) and returns its third argument, the old state, so step 1 "
                  "is 0 and every later step applies the step computed one call earlier (g = −1 three times from "
                  "θ = −1, lr = 0.01: updates 0, +0.01, +0.012; after a sign change the reduced step is lost too); "
                  "Riedmiller & Braun 1993 (cited, alias.py:2518) move by −sign(g_t)·Δ_t at step t; open upstream "
                  "fix: google-deepmind/optax PR #1725",
        "source": "optax/_src/transform.py:950 "
                  "(https://github.com/google-deepmind/optax/blob/v0.2.8/optax/_src/transform.py#L950)",
        "variant": "",
    },
    # ---- modern rows (optimizers/ecosystem_modern.py) -------------------------------------------------------------
    "po_ADOPT": {
        "verdict": "likely bug",
        "reason": "clip bound one step late: clip = clip_lambda(group['step']) after the increment (adopt.py:213, "
                  "the CPU foreach default; :180 per parameter), so the second call clips at 2^p; the official code "
                  "its README cites (iShohei220/adopt) calls clip_lambda(step) before incrementing (1^p at the second "
                  "call; a summary of the paper, also cited, gives v_0 = g_0² and c_t = t^p for t ≥ 1, the same index); checked: g = 0.1 then 10, γ = 0.1, p = 0.25 gives "
                  "0.98811 against 0.99, exactly (2^p − 1)γ(1 − β1); also t is the group's step count (adopt.py:207: "
                  "a parameter whose first gradient arrives at group step > 1 skips the v-initialising step), "
                  "maximize read from the constructor, p.grad negated/decayed in place, NegativeLRError",
        "source": "pytorch_optimizer/optimizer/adopt.py:213 "
                  "(https://github.com/kozistr/pytorch_optimizer/blob/v4.1.0/pytorch_optimizer/optimizer/adopt.py#L213)",
        "variant": "",
    },
    "po_AdEMAMix": {
        "verdict": "convention",
        "reason": "the paper's formula; t is the group's step count (ademamix.py:202) in both bias corrections and "
                  "the α/β3 schedulers (:206-210), so a parameter that missed a gradient is corrected and scheduled "
                  "for steps it did not take; the β3 scheduler's min(…, β3) at every t (:114-124) departs from the "
                  "official code after T only for β1 > β3, outside the rule's domain; NegativeLRError (not "
                  "ValueError) for lr < 0 (validation)",
        "source": "pytorch_optimizer/optimizer/ademamix.py:202",
        "variant": "ademamix_group_step",
    },
    "po_Adan": {
        "verdict": "convention",
        "reason": "the rule's formula (proximal decay with weight_decouple=False, adan.py:220-221; decoupled at "
                  ":214-215); t is the group's step count (adan.py:239), as in the official sail-sg/Adan ('assume "
                  "same step across group'); NegativeLRError for lr < 0 (validation)",
        "source": "pytorch_optimizer/optimizer/adan.py:239",
        "variant": "adan_group_step",
    },
    "po_Lamb": {
        "verdict": "likely bug",
        "reason": "its docstring says 'The default update follows version 3 of the paper without bias correction' "
                  "(lamb.py:14), yet the default step divides by 1 − β1^t: step_size = apply_adam_debias("
                  "adam_debias=False) = lr/(1 − β1^t) (lamb.py:311; base/optimizer.py:307), applied outside the "
                  "trust ratio, so step 1 is 1/(1 − β1) = 10× the paper's γφ(‖θ‖) (checked: ‖Δθ‖ = 0.5 against 0.05 "
                  "for γ = 0.01, ‖θ‖ = 5, β1 = 0.9, both code paths); beside it, fixed choices: φ(z) = min(z, 10) "
                  "always (class attribute clamp, :38), ε in the trust-ratio denominator φ/(‖u‖ + ε) (:176, :265), "
                  "√v uncorrected; t is the group's step count (:295); NegativeLRError",
        "source": "pytorch_optimizer/optimizer/lamb.py:311 "
                  "(https://github.com/kozistr/pytorch_optimizer/blob/v4.1.0/pytorch_optimizer/optimizer/lamb.py#L311)",
        "variant": "as documented (after a fix), new: lamb with bias_correction=False, clamp_value=10 and "
                   "ratio = φ(‖θ‖)/(‖u‖ + ε)",
    },
    "timm_Adan": {
        "verdict": "convention",
        "reason": "t is the group's step count (adan.py:139-145), as in sail-sg/Adan from which it is adapted "
                  "(adan.py:6); otherwise the rule's; validation: weight_decay < 0 accepted (no check in __init__, "
                  "adan.py:75-84)",
        "source": "timm/optim/adan.py:139",
        "variant": "adan_group_step",
    },
    "timm_Lamb": {
        "verdict": "convention",
        "reason": "t is the group's step count (lamb.py:189-201, 'assume same step across group now to simplify "
                  "things'); with max_grad_norm=None and always_adapt=True (the mapping) the update is Algorithm 2; "
                  "validation: β < 0 accepted (only lr, eps, weight_decay are checked, lamb.py:112-114); timm's own "
                  "default always_adapt=False skips the trust ratio when weight_decay = 0",
        "source": "timm/optim/lamb.py:193",
        "variant": "lamb_group_step",
    },
    "to_Lamb": {
        "verdict": "different formula",
        "reason": "debias=True (the mapping's bias_correction) is Adam's step-size debias, documented as 'debias adam "
                  "by (1 - beta**step)' (lamb.py:30) and applied to the step size outside the trust ratio "
                  "(lr·√(1 − β2^t)/(1 − β1^t), lamb.py:130-137) with the ratio taken on the uncorrected "
                  "u = m_t/(√v_t + ε) + λθ (:141-149); Algorithm 2 corrects m and v inside u, so its step is γφ(‖θ‖) "
                  "long; with debias=False it is the rule with bias_correction=False; clamp_value, adam and debias "
                  "are constructor attributes, not per group (:76-78); lr = 0 refused (:56, validation)",
        "source": "torch_optimizer/lamb.py:130 "
                  "(https://github.com/jettify/pytorch-optimizer/blob/v0.3.0/torch_optimizer/lamb.py#L130)",
        "variant": "lamb_adam_debias (new): u = m_t/(√v_t + ε) + λθ, ratio = φ(‖θ‖)/‖u‖, "
                   "θ ← θ − γ·(√(1 − β2^t)/(1 − β1^t) if bias_correction else 1)·ratio·u",
    },
    "lionpytorch_Lion": {
        "verdict": "validation only",
        "reason": "updates conform; 'assert lr > 0.' (lion_pytorch.py:40) refuses lr = 0, inside the rule's domain, "
                  "with AssertionError, and weight_decay < 0 is accepted (no check)",
        "source": "lion_pytorch/lion_pytorch.py:40",
        "variant": "",
    },
    "po_Lion": {
        "verdict": "validation only",
        "reason": "updates conform; lr < 0 raises NegativeLRError (base/optimizer.py:654-657), an Exception that is "
                  "not a ValueError (base/exception.py:32)",
        "source": "pytorch_optimizer/base/exception.py:32",
        "variant": "",
    },
    "timm_Lion": {
        "verdict": "validation only",
        "reason": "updates conform; weight_decay < 0 accepted (lion.py checks only lr and betas, lines 59-63)",
        "source": "timm/optim/lion.py:59",
        "variant": "",
    },
    # ---- rows assessed after the second edition (timm 1.0.31, heavyball 3.2.1 on torch 2.13 CPU, optax 0.2.8) ------
    "timm_RMSpropTF": {
        "verdict": "convention",
        "reason": "TensorFlow's RMSprop as its docstring lists (rmsprop_tf.py:33-36: v_0 = 1 at :143, ε inside √ at "
                  ":274/:277, lr in the momentum buffer at :284): against the rmsprop_tf rule ≤2e-14 relative over 400 "
                  "random 8-step runs (both foreach paths) except centered with α = 0, where ṽ = v − ḡ² is 0 in exact "
                  "arithmetic and square_avg.addcmul(grad_avg, grad_avg, value=-1) (:274; foreach :349) forms it "
                  "with one rounding: the exact fl(g²) − g², e.g. −6.29e-12 for g = 317.2277660168379, below "
                  "−ε = −1e-12, so √ is NaN even at lr = 0 (the rule's plain v − ḡ·ḡ gives 0 there); "
                  "the rule's ṽ is a variance (≥ 0) and θ stays finite, so NaN is a deviation — the one torch's "
                  "RMSprop has too (known deviation rmsprop-centered-negative-variance) — and the variant run's only "
                  "failures",
        "source": "timm/optim/rmsprop_tf.py:274",
        "variant": "rmsprop_tf",
    },
    **{name: {
        "verdict": "differs (not assessed)",
        "reason": "not heavyball's formula: torch 2.13's torch.compile (aot_eager and inductor alike; heavyball compiles "
                  "every step by default, utils.py:25/:105) silently drops in-place writes to 0-d float64 tensors: "
                  "def h(x, y): x.copy_(x + y) leaves a 0-d float64 x unchanged (float32 and 1-d are updated); with "
                  "storage_dtype='float64' that loses " + what + "; with heavyball.utils.compile_mode = None the row "
                  "matches " + rest,
        "source": "heavyball/utils.py:105 (decorator_knowngood compiles the step; defect in torch 2.13 "
                  "torch.compile, reproduced without heavyball)",
        "variant": variant,
    } for name, what, rest, variant in (
        ("heavyball_AdamW_float64",
         "a 0-d parameter's m and v, so θ never moves (g = −1, γ = 1e-3: −1.0 three steps running; 1-d −0.999, "
         "−0.998, −0.997) and at ε = 0 it is 0/0 = NaN",
         "adamw_eps_floor to ≤3.7e-8 relative (0-d and 1-d): the float32 learning rate (chainable.py:2594), which "
         "storage_dtype does not change; p.grad set to None (consume_grad)", "adamw_eps_floor"),
        ("heavyball_NAdam_float64",
         "mu_product, always a 0-d float64 state (chainable.py:274), so 1 − μ-product stays 0 and every update is "
         "±inf, for every shape (inf from step 1; NaN at lr = 0)",
         "nadam (decoupled_weight_decay=True) to ≤8.4e-7 relative: ε floor and float32 lr; coupled decay as for "
         "heavyball.NAdam", "nadam_eps_floor (new, see heavyball.NAdam)"),
        ("heavyball_SGD_float64",
         "a 0-d parameter's momentum buffer: b stays 0 and each step is −γg (β = 0.9, g = −1 then +1, "
         "γ = 1e-3: −0.999 then −1.0, where momentum gives −0.9991)",
         "sgdw to ≤7.6e-7 relative: the float32 lr (θ = −1, γ = 1e-3, g = −1 gives −0.9989999999525025)", "sgdw"),
    )},
    "optax_adamw": {
        "verdict": "validation only",
        "reason": "the formula is the rule's; the decoupled-decay counterexample of the earlier run formed a "
                  "subnormal (θ_0 = 2.2250738585072014e-308, γλθ subnormal) that XLA on CPU flushes to zero, which "
                  "optax declares (subnormals = flush) and the decay property now allows; validation: lr < 0 "
                  "accepted (optax checks nothing)",
        "source": "optax/transforms/_adding.py:35 (add_decayed_weights; the flush is XLA's)",
        "variant": "",
    },
    "optax_adan": {
        "verdict": "likely bug",
        "reason": "optax keeps the official code's β convention for the EMAs (m, v, n = b·old + (1 − b)·new; defaults "
                  "0.98, 0.92, 0.99) but weights the gradient difference by 1 − b2 where Algorithm 1 of the paper "
                  "it cites has 1 − β2 = b2: n uses (g + (1 − b2)Δ)² (transform.py:666) and the step m̂ + (1 − b2)v̂ "
                  "(:674), i.e. 0.08 for 0.92 at the defaults; open fix: google-deepmind/optax PR #1715. That "
                  "formula, with eps_root = 1e-8 inside √ (adan's default, alias.py:815) and decay θ − γλθ − γu "
                  "(add_decayed_weights, alias.py:922: the rule's no_prox form, though the docstring writes the "
                  "proximal /(1 + λη), alias.py:866) reproduces optax to 6.2e-15 over 30 random 5-step runs, the "
                  "rule with eps_root = 1e-8 is off by up to 10.6× (relative); step 1 (Δ = 0) differs only by "
                  "eps_root: 5e-12 at g = 1, γ = 1e-3; lr < 0 accepted",
        "source": "optax/_src/transform.py:666 "
                  "(https://github.com/google-deepmind/optax/blob/v0.2.8/optax/_src/transform.py#L666); "
                  "optax/_src/transform.py:674 "
                  "(https://github.com/google-deepmind/optax/blob/v0.2.8/optax/_src/transform.py#L674)",
        "variant": "",
    },
    **{name: {
        "verdict": "likely bug",
        "reason": "the warm-up schedule is read at two different counts: the averaging weight at step_count, which "
                  "starts at 1 (_schedule_free.py:150, read at :165), the base step through "
                  + base + " at its own count from 0, so z moves by γ(t−1)/W while the weight uses γ t/W; the paper "
                  "(c_{t+1} = γ_t²/Σγ_i², with γ_t the rate of that step) and the official code ((k+1)/W) use one "
                  "rate; the first warm-up step is lost (" + example + "); open fix: google-deepmind/optax PR #1744; "
                  "with that lag (and optax's float32 schedule values) it matches the rule to " + lag + ", and "
                  "without warm-up to " + nowarm + extra,
        "source": "optax/contrib/_schedule_free.py:150 "
                  "(https://github.com/google-deepmind/optax/blob/v0.2.8/optax/contrib/_schedule_free.py#L150)",
        "variant": "",
    } for name, base, example, lag, nowarm, extra in (
        ("optax_schedule_free_sgd", "alias.sgd(learning_rate) (:284)",
         "θ_0 = −1, g = −1, γ = 1, β = 0.9, W = 1: −1.0 then −0.45 where the rule gives 0.0 then 0.55",
         "5.5e-7", "3.5e-15; lr < 0 accepted", ""),
        ("optax_schedule_free_adamw", "scale_by_learning_rate (:373)",
         "γ = 0.1, W = 2, g = 1: θ stays −1.0",
         "3.5e-6", "9.6e-16",
         "; all of the matrix's counterexamples are b1 = 0, NaN at once because x is recovered as "
         "(y − (1 − b1)z)/b1 (:195): documented ('requires the parameter b1 to be strictly positive', :130), "
         "not a bug; lr < 0 accepted"),
    )},
    "optax_adopt": {
        "verdict": "likely bug",
        "reason": "the first step is not skipped: the paper (Algorithm 1) and the official code only set v_0 = g_0² "
                  "at step 0, while scale_by_adopt computes clip(g / max(√ν_{-1}, ε)) with ν_{-1} = 0 and adds it to "
                  "μ weighted by 1 − b1_ = 0 (b1_ = 1 at count 0, _adopt.py:70, :85): where g / max(0, ε) is NaN "
                  "(g = 0 with ε = 0, or ε rounding to 0 in float16: ε = 1e-8) or ±inf unclipped, 0·NaN leaves NaN in "
                  "μ and θ for good (checked directly on optax: float16, ε = 1e-8, a zero gradient element at step 0 "
                  "→ NaN forever); with ε > 0 in range every drawn case conforms (the clip at s = t − 1, "
                  "_adopt.py:73, as the paper's); validation: lr < 0 accepted",
        "source": "optax/contrib/_adopt.py:85 "
                  "(https://github.com/google-deepmind/optax/blob/v0.2.8/optax/contrib/_adopt.py#L85)",
        "variant": "",
    },
    # ---- schedulefree 1.4.1 ----------------------------------------------------------------------------------------
    **{name: {
        "verdict": "convention",
        "reason": "t, lr_max and the weight sum are the group's (they advance at every step(), also for a parameter "
                  "without a gradient), where the rule counts each parameter's own steps, as torch.optim does; with "
                  "a gradient for every parameter at every step it matches the rule to ~4e-16 and .eval() gives x; "
                  "it also writes into p.grad (SGD adds λy, AdamWScheduleFree divides by the denominator in place)",
        "source": f"schedulefree/{file}:{line}",
        "variant": "schedulefree_sgd_group_step" if "SGD" in name else "schedulefree_adamw_group_step",
    } for name, file, line in (("sf_SGDScheduleFree", "sgd_schedulefree.py", 126),
                               ("sf_SGDScheduleFreeReference", "sgd_schedulefree_reference.py", 124),
                               ("sf_AdamWScheduleFree", "adamw_schedulefree.py", 125),
                               ("sf_AdamWScheduleFreeReference", "adamw_schedulefree_reference.py", 137))},
}
