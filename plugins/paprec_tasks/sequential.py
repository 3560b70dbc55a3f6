"""Sequential recommendation: predict a user's next item from their (recent) history, ranked over all items."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paprec_cli.specs import Example, Part, Template, Word

from .common import COLON, ItemWords, RankingTask, user_values
from .templates import SEQUENTIAL

if TYPE_CHECKING:
    from paprec_cli.data.splits import TaskData


class SequentialTask(RankingTask):
    """Leave-one-out next-item prediction (last item test, second-to-last validation).

    Train examples are every prefix of a user's training sequence (history t_1..t_{j-1} -> target t_j,
    j >= 2), so the validation and test items never appear in them; validation predicts the
    second-to-last item from the training sequence, test the last from training + validation.
    """

    name = "sequential"
    description = "next-item prediction from the purchase history (leave-one-out; HR/NDCG over all items)"
    argument_help = "user_U : i1 , i2 , ... , iN (the most recent items, oldest first: 20, or P5's rules)"
    default_template = "2-3"
    #: paprec's own models see the most recent `max_history` items, or the `history` of their input
    #: protocol (`InputProtocol.history`, a model's `input_history`). The P5 protocol (`paprec_cli.inputs`,
    #: `TaskData.inputs`) differs: Amazon sets keep the whole history (P5 only cuts at 512 tokens).
    max_history = 20

    @property
    def templates(self) -> list[Template]:
        return list(SEQUENTIAL)

    def _build(self, data: TaskData, part: Part) -> list[Example]:
        words = ItemWords(data.n_items)
        loo = data.loo
        inputs = getattr(data, "inputs", None)
        # paprec's own models: their protocol's cap (20 unless the model records another); P5's: its rules
        if inputs is None or inputs.name == "paprec":
            limit = (inputs.history if inputs is not None else None) or self.max_history
            train_limit = limit
        else:
            limit, train_limit = inputs.history, self.max_history
        out: list[Example] = []
        if part == "train":
            for user in range(1, data.n_users + 1):
                sequence = loo.train[user]
                if len(sequence) < 2:
                    continue
                listed = words.listed(sequence)  # item , item , ...: item j sits at word 2j
                user_values_ = user_values(data, Word.user(user))
                for j in range(1, len(sequence)):
                    start = max(0, j - train_limit)
                    history = tuple(listed[2 * start : 2 * j - 1])
                    out.append(self._example(user_values_, history, int(sequence[j])))
            return out
        if part not in ("validation", "test"):
            raise ValueError(f"unknown split part {part!r}")
        targets = loo.validation if part == "validation" else loo.test
        for user in loo.users(part):
            user = int(user)
            history_items = loo.history(user, part)
            if limit is not None:
                history_items = history_items[-limit:]
            separator = inputs.separator_for(user, part) if inputs is not None else ","
            history = tuple(words.listed(history_items, separator))
            out.append(self._example(user_values(data, Word.user(user)), history, int(targets[user])))
        return out

    @staticmethod
    def _example(users: dict[str, tuple[Word, ...]], history: tuple[Word, ...], target: int) -> Example:
        user_word = users["user"][0]
        return Example(
            user=user_word.index,
            argument=(user_word, COLON, *history),
            values={**users, "history": history},
            target=target,
        )
