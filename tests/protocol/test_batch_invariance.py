"""A run's scores do not depend on how its images are cut into batches or how its forward
passes are chunked: every image draws its randomness from a generator seeded from the run seed
and its id, and Guided IG decides each image's path from that image's own gradients and
distances (its images step together, every one with its own decisions).

IG and BlurIG are left out here: they take a gradient at the image itself, and the synthetic
model max-pools flat image regions, where float rounding of a batched forward pass breaks exact
ties differently (see docs/methods.md, "Which settings may change results")."""

from __future__ import annotations

import numpy as np

from absgrad.protocol import make_config, run_protocol
from absgrad.protocol.store import RunStore

MAPS = ["gag-85", "vargrad", "sg-r", "guidedig-g", "guidedig-r"]


def _scores(out, **extra) -> dict[tuple[str, str, str], np.ndarray]:
    config = make_config(
        {"case": "synthetic"},
        {
            "maps": MAPS,
            "metrics": ["rcap", "dauc"],
            "n_samples": 3,
            "limit": 16,
            "ig_steps": 3,
            **extra,
        },
    )
    run_protocol(config, out, quiet=True)
    per_image = {}
    for rec in RunStore(out).records():
        for label, metrics in rec["scores"].items():
            for metric in ("rcap", "deletion"):
                for image_id, v in zip(rec["image_ids"], metrics[metric], strict=True):
                    per_image[(image_id, label, metric)] = np.asarray(v, dtype=np.float64)
    return per_image


def test_scores_do_not_depend_on_batch_size_or_gradient_and_forward_chunks(tmp_path):
    ref = _scores(tmp_path / "b4", batch_size=4)
    assert len({k[0] for k in ref}) == 16 and set(MAPS) <= {k[1] for k in ref}
    for name, extra in {
        "b1": {"batch_size": 1},
        "b3": {"batch_size": 3},
        "b16": {"batch_size": 16},
        "eval1": {"batch_size": 4, "eval_batch_size": 1},
        "grad1": {"batch_size": 4, "grad_batch_size": 1},  # one image per gradient pass
        "grad16": {"batch_size": 4, "grad_batch_size": 16},  # four samples per pass
    }.items():
        got = _scores(tmp_path / name, **extra)
        assert set(got) == set(ref)
        worst = max(float(np.abs(got[k] - ref[k]).max()) for k in ref)
        print(f"\n[batch invariance] {name}: max score difference {worst:.2e}")
        assert worst < 1e-6, name
