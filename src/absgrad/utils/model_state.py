"""Run a model in eval mode (optionally with frozen parameters) and restore it afterwards."""

from __future__ import annotations

from torch import nn


class eval_mode:
    """Context manager: eval mode for ``model``; every module's train/eval flag is restored after.

    ``frozen=True`` also sets ``requires_grad=False`` on the parameters (gradients are taken
    with respect to the inputs only) and restores the flags afterwards. A ``model`` that is a
    plain callable, not an ``nn.Module``, is left alone, and so is a model in eval mode with
    frozen parameters already (the protocol runner's: it sets both once per run), whose flags
    are only read.
    """

    def __init__(self, model: nn.Module, *, frozen: bool = False) -> None:
        self.model = model
        self.frozen = frozen
        self.flags: list[tuple[nn.Module, bool]] = []
        self.grads: list[tuple[nn.Parameter, bool]] = []

    def __enter__(self) -> nn.Module:
        if isinstance(self.model, nn.Module):
            flags = [(m, m.training) for m in self.model.modules()]
            if any(flag for _, flag in flags):
                self.flags = flags
                self.model.eval()
            if self.frozen:
                self.grads = [(p, True) for p in self.model.parameters() if p.requires_grad]
                for p, _ in self.grads:
                    p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc: object) -> None:
        for p, flag in self.grads:
            p.requires_grad_(flag)
        for m, flag in self.flags:
            m.training = flag
        self.flags, self.grads = [], []
