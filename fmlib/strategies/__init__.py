"""Query strategies: which unlabeled pool points to label next.

Every strategy answers ``select(model, pool, labeled, unlabeled, n, seed=, device=)`` with ``n``
distinct positions into ``pool`` taken from ``unlabeled`` (fewer, with a warning, only when fewer
are unlabeled), deterministically for a fixed seed. It scores with the model in eval mode on
``device`` and restores the model's mode and device afterwards. ``strategy.report``
(:class:`SelectionReport`) describes the last call: ``embed_time`` and ``select_time`` in seconds
(computing scores/embeddings/Fisher vs. choosing), and for ``bait``/``fishermask`` a
:class:`FisherReport` in ``report.fisher`` (``fisher_diag``, ``mask``, ``picked_scores``,
``fisher_trace``).

Every strategy but ``random`` takes ``max_candidates`` (default ``None``: all of ``unlabeled``): for
big pools, score only a seeded random subset of that many unlabeled points (at least ``n``).
Among equal scores the earlier position in ``unlabeled`` wins.

One module per family:

==========================  ==========================================================
``strategies.base``         :class:`Strategy`, the registry (:func:`register`,
                            :func:`get_strategy`, :func:`build_strategy`, ``STRATEGIES``), the
                            reports, ``random``
``strategies.uncertainty``  ``entropy``, ``margin``, ``least_confidence``, ``bald``
``strategies.diversity``    ``coreset`` (k-center greedy), ``badge`` (k-means++ on gradients)
``strategies.fisher``       ``bait`` and ``fishermask``: BAIT's greedy on Fisher embeddings
==========================  ==========================================================
"""

from fmlib.strategies.base import (
    STRATEGIES,
    FisherReport,
    Random,
    SelectionReport,
    Strategy,
    build_strategy,
    check_picks,
    get_strategy,
    register,
    strategy_class,
)
from fmlib.strategies.diversity import (
    BADGE,
    Coreset,
    k_center_greedy,
    kmeans_pp,
    kronecker_sq_distances,
)
from fmlib.strategies.fisher import BAIT, FisherMask, head_gradient_embeddings
from fmlib.strategies.uncertainty import (
    BALD,
    Entropy,
    LeastConfidence,
    Margin,
    bald_scores,
    entropy,
)

__all__ = [
    "check_picks",
    "BADGE",
    "BAIT",
    "BALD",
    "STRATEGIES",
    "Coreset",
    "Entropy",
    "FisherMask",
    "FisherReport",
    "LeastConfidence",
    "Margin",
    "Random",
    "SelectionReport",
    "Strategy",
    "bald_scores",
    "build_strategy",
    "entropy",
    "get_strategy",
    "head_gradient_embeddings",
    "k_center_greedy",
    "kmeans_pp",
    "kronecker_sq_distances",
    "register",
    "strategy_class",
]
