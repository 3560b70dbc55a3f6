"""P5's multitask, multi-template training data, plus the auxiliary word families, one epoch at a time.

Each epoch renders every training example of every chosen task once, with a template drawn (seeded by
epoch) from its family's *trained* templates: the held-out one (`Template.held_out`) never appears,
so unseen-prompt evaluation stays honest. Auxiliary word pairs are added in proportion to the task
data (see `Mixture`) and everything is shuffled with the same seed. Only `part="train"` examples
and `TaskData.loo.train` are read, so no validation or test target reaches training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import groupby

import numpy as np

from paprec_cli.data.splits import TaskData
from paprec_cli.specs import Example, TaskSpec, Template, Word
from paprec_cli.training.words import (
    AUX_TEXTS,
    Pair,
    attribute_phrases,
    has_attributes,
    hint_pair,
    history_hint_pair,
    item_next_pairs,
    item_words_pairs,
    user_item_pairs,
    word_item_pairs,
)


@dataclass(frozen=True)
class Mixture:
    """How much auxiliary data an epoch adds, relative to the ranking tasks' training examples."""

    #: Attribute-hinted copies of ranking examples, as a share of ranking examples.
    hint: float = 0.5
    #: (user, attribute) -> item pairs, as a share of ranking examples.
    word_item: float = 0.25
    #: Passes over items for item -> attribute words.
    item_words: float = 1.0
    #: (item -> next training item) pairs, as a share of ranking examples (no attributes needed).
    item_next: float = 0.0
    #: (user -> one of their training items) pairs, as a share of ranking examples.
    user_item: float = 0.0
    #: Ranking examples with their history's most frequent attribute appended, as a share of ranking examples.
    history_hint: float = 0.0
    #: Share of a task's training examples drawn (seeded) each epoch; tasks not named use all of them.
    #: Lets a CPU run spend its time on the main task while still training the others.
    task_share: dict[str, float] = field(default_factory=dict)
    #: Each user's most recent training examples kept per ranking task (0: all of them). A sequential
    #: task's examples are every prefix of the training sequence, oldest first; `recent=N` keeps the last
    #: N prefixes (histories ending nearest the validation and test items), so an epoch is shorter.
    recent: int = 0
    #: Share of every task's training examples (after `recent`, times `task_share`) drawn per epoch, a new
    #: seeded draw each epoch: shorter epochs, so model selection sees more validation points.
    share: float = 1.0
    #: Items after the target in the user's training sequence trained as extra targets of a ranking example
    #: (0: off): the next `future` items, nearest first, each a target of the first output position with
    #: `Recipe.future_weight` (a dense "future window" loss, cf. PinnerFormer's dense all-action loss,
    #: Pancha et al. 2022). Only training items: no validation or test target is read. Atomic ids only;
    #: tasks whose examples are not prefixes of the training sequence (direct's candidate lists) keep none.
    future: int = 0

    def enabled(self) -> bool:
        """Whether any attribute-word family is on."""
        return self.hint > 0 or self.word_item > 0 or self.item_words > 0 or self.history_hint > 0


def trained_templates(task: TaskSpec) -> list[Template]:
    """The templates training uses: all but the held-out one of each family."""
    kept = [t for t in task.templates if not t.held_out]
    if not kept:
        raise ValueError(f"task {task.name} has no trainable template (all are held out)")
    return kept


def recent_indices(users: Sequence[int], keep: int) -> np.ndarray:
    """Positions of the last `keep` entries of each user in `users` (a user's entries in time order),
    in their original order. Example: users [1, 1, 1, 2, 2], keep 2 -> [1, 2, 3, 4]."""
    ids = np.asarray(users, dtype=np.int64)
    if keep <= 0 or len(ids) == 0:
        return np.arange(len(ids))
    # rank from the end within each user: count of later entries of the same user
    order = np.arange(len(ids))[::-1]
    seen: dict[int, int] = {}
    from_end = np.empty(len(ids), dtype=np.int64)
    for position in order.tolist():
        user = int(ids[position])
        from_end[position] = seen.get(user, 0)
        seen[user] = from_end[position] + 1
    return np.flatnonzero(from_end < keep)


def future_items(examples: Sequence[Example], train: Sequence[np.ndarray], keep: int) -> list[tuple[int, ...]] | None:
    """Per example, the next `keep` items of its user's training sequence after its target, nearest first.

    Examples must be built per user, oldest first, each user's targets being the tail of their training
    sequence (sequential prefixes: `train[u][1:]`); otherwise None (the task has no future window).
    Example: train[u] = [5, 6, 7, 8], examples targeting 6, 7, 8, keep 2 -> (7, 8), (8,), ().
    """
    out: list[tuple[int, ...]] = []
    for user, block in groupby(examples, key=lambda ex: ex.user):
        targets = list(block)
        if targets[0].candidates is not None or not 0 <= user < len(train):
            return None
        sequence = train[user]
        first = len(sequence) - len(targets)
        if first < 0 or any(int(ex.target) != int(sequence[first + k]) for k, ex in enumerate(targets)):
            return None
        out += [tuple(int(i) for i in sequence[first + k + 1 : first + k + 1 + keep]) for k in range(len(targets))]
    return out


class TrainingData:
    """Builds each epoch's shuffled list of `Pair`s for a set of tasks on one dataset."""

    def __init__(self, data: TaskData, tasks: Sequence[TaskSpec], mixture: Mixture, seed: int) -> None:
        self.data = data
        self.tasks = list(tasks)
        self.mixture = mixture
        self.seed = seed
        self._last: tuple[int, list[Pair]] | None = None  # the most recent epoch, asked for repeatedly

    @cached_property
    def examples(self) -> dict[str, list[Example]]:
        """Training examples per task (built once; their Words are shared, not copied)."""
        return {task.name: task.examples(self.data, "train") for task in self.tasks}

    @cached_property
    def futures(self) -> dict[str, list[tuple[int, ...]] | None]:
        """Per ranking task, each training example's future window (`future_items`), or None."""
        keep = self.mixture.future
        return {
            task.name: future_items(self.examples[task.name], self.data.loo.train, keep)
            if keep > 0 and task.kind == "ranking" else None
            for task in self.tasks
        }

    @cached_property
    def phrases(self) -> list[list[tuple]]:
        return attribute_phrases(self.data.dataset.item_attributes)

    @property
    def uses_words(self) -> bool:
        """Auxiliary word families run only where items have attributes."""
        return self.mixture.enabled() and has_attributes(self.phrases)

    def families(self) -> list[str]:
        names = [task.name for task in self.tasks]
        if self.uses_words:
            names += [n for n in ("item_words", "word_item", "hint", "history_hint") if getattr(self.mixture, n) > 0]
        names += [n for n in ("item_next", "user_item") if getattr(self.mixture, n) > 0]
        return names

    def texts(self) -> list[str]:
        """Prompt text for tokenizer training: every template (held-out too, so search can use its
        words) and the auxiliary phrasings."""
        return [t.source for task in self.tasks for t in task.templates] + list(AUX_TEXTS)

    def pool(self, task: TaskSpec) -> np.ndarray:
        """Indices of the task's training examples an epoch draws from: all, or with `Mixture.recent`
        each user's last `recent` examples (ranking tasks; examples are built per user, oldest first)."""
        examples = self.examples[task.name]
        if self.mixture.recent <= 0 or task.kind != "ranking":
            return np.arange(len(examples))
        return recent_indices([ex.user for ex in examples], self.mixture.recent)

    def _task_pairs(self, task: TaskSpec, rng: np.random.Generator) -> tuple[list[Pair], list[Pair]]:
        """(pairs, hinted pairs) of one task for one epoch."""
        examples = self.examples[task.name]
        share = min(max(float(self.mixture.task_share.get(task.name, 1.0)) * self.mixture.share, 0.0), 1.0)
        chosen = self.pool(task)
        if share < 1.0:
            size = int(round(share * len(chosen)))
            chosen = chosen[np.sort(rng.choice(len(chosen), size=size, replace=False))]
        templates = trained_templates(task)
        picks = rng.integers(len(templates), size=len(chosen))
        pairs: list[Pair] = []
        targets: list[tuple] = []
        futures = self.futures.get(task.name)
        for index, pick in zip(chosen.tolist(), picks.tolist(), strict=True):
            example = examples[index]
            target = tuple(task.target_words(example))
            targets.append(target)
            future = tuple(Word.item(i) for i in futures[index]) if futures is not None else ()
            pairs.append(Pair(tuple(templates[pick].render(example.values)), target, task.name, future,
                              candidates=example.candidates is not None))
        hinted: list[Pair] = []
        if self.uses_words and task.kind == "ranking" and self.mixture.hint > 0 and len(chosen):
            n = int(round(self.mixture.hint * len(chosen)))
            for row in rng.choice(len(chosen), size=min(n, len(chosen)), replace=False).tolist():
                example = examples[int(chosen[row])]
                template = templates[int(rng.integers(len(templates)))]
                pair = hint_pair(example, template, targets[row], self.phrases, rng)
                if pair is not None:
                    hinted.append(pair)
        if self.uses_words and task.kind == "ranking" and self.mixture.history_hint > 0 and len(chosen):
            n = int(round(self.mixture.history_hint * len(chosen)))
            for row in rng.choice(len(chosen), size=min(n, len(chosen)), replace=False).tolist():
                example = examples[int(chosen[row])]
                template = templates[int(rng.integers(len(templates)))]
                pair = history_hint_pair(example, template, targets[row], self.data.dataset.item_attributes, rng)
                if pair is not None:
                    hinted.append(pair)
        return pairs, hinted

    def epoch(self, epoch: int) -> list[Pair]:
        """All pairs of one epoch, shuffled; a pure function of (seed, epoch)."""
        if self._last is None or self._last[0] != epoch:
            self._last = (epoch, self._build_epoch(epoch))
        return self._last[1]

    def _build_epoch(self, epoch: int) -> list[Pair]:
        rng = np.random.default_rng([self.seed, epoch, 1])
        pairs: list[Pair] = []
        n_ranking = 0
        for task in self.tasks:
            main, hinted = self._task_pairs(task, rng)
            pairs += main + hinted
            n_ranking += len(main) if task.kind == "ranking" else 0
        if self.uses_words:
            passes = self.mixture.item_words
            for _ in range(int(np.floor(passes)) + (rng.random() < passes % 1)):
                pairs += item_words_pairs(self.phrases, rng)
            n_word_item = int(round(self.mixture.word_item * max(n_ranking, len(self.phrases))))
            pairs += word_item_pairs(self.data.loo.train, self.phrases, n_word_item, rng)
        train = self.data.loo.train
        pairs += item_next_pairs(train, int(round(self.mixture.item_next * n_ranking)), rng)
        pairs += user_item_pairs(train, int(round(self.mixture.user_item * n_ranking)), rng)
        order = rng.permutation(len(pairs))
        return [pairs[i] for i in order.tolist()]

    def family_counts(self, pairs: Sequence[Pair]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for pair in pairs:
            counts[pair.family] = counts.get(pair.family, 0) + 1
        return counts
