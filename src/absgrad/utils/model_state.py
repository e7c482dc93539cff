"""Run a model in eval mode (optionally with frozen parameters) and restore it afterwards."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class eval_mode:
    """Context manager: eval mode for ``model``; every module's train/eval flag is restored after.

    ``frozen=True`` also sets ``requires_grad=False`` on the parameters (gradients are taken
    with respect to the inputs only) and restores the flags afterwards. A ``model`` that is a
    plain callable, not an ``nn.Module``, is left alone, and so is a model in eval mode with
    frozen parameters already (the protocol runner's: it sets both once per run), whose flags
    are only read. ``modules``: ``model.modules()`` listed once by a caller that enters this
    often (an engine, per forward chunk), so that no call walks the module tree.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        frozen: bool = False,
        modules: Sequence[nn.Module] | None = None,
    ) -> None:
        self.model = model
        self.frozen = frozen
        self.modules = modules
        self.flags: list[tuple[nn.Module, bool]] = []
        self.unfrozen: list[nn.Parameter] = []  # the parameters frozen on entry

    def __enter__(self) -> nn.Module:
        if isinstance(self.model, nn.Module):
            modules = self.modules if self.modules is not None else self.model.modules()
            flags = [(m, m.training) for m in modules]
            if any(flag for _, flag in flags):
                self.flags = flags
                self.model.eval()
            if self.frozen:
                self.unfrozen = [p for p in self.model.parameters() if p.requires_grad]
                for p in self.unfrozen:
                    p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc: object) -> None:
        for p in self.unfrozen:
            p.requires_grad_(True)
        for m, flag in self.flags:
            m.training = flag
        self.flags, self.unfrozen = [], []
