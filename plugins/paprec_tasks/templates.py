"""Manual templates of the built-in tasks, in P5's wording and numbering.

Transcribed from P5 (Geng et al., "Recommendation as Language Processing (RLP): A Unified Pretrain,
Personalized Prompt & Predict Paradigm (P5)", RecSys 2022; github.com/jeykigung/P5,
`notebooks/all_amazon_templates.py`, task subgroups 1, 2 and 5). P5's ids are kept so that a P5 checkpoint
sees the prompts it was trained on. Slot mapping from P5's positional `{}` arguments:

- `user_{}` and `{user_desc}` -> `{user}` (one user word, rendered `user_<index>`). Where P5 wrote the
  user's name (`user_desc`: 2-4, 2-5, 2-6, 2-13, 5-5, 5-6, 1-6; `user_name=True`), the P5 input protocol
  writes the name instead when the dataset keeps one (McAuley's `reviewerName`); without one, and for
  paprec's own models, it stays `user_<index>` (P5 itself writes the reviewer id there);
- `item_{}` -> `item {item}` (the item word; how it is tokenized is the model codec's choice);
- `purchase_history` -> `{history}` ("45 , 873 , 22"), `candidates` -> `{candidates}` (same format).

P5's literal "\\n" separators are kept; rendering splits on whitespace, so they become word breaks.

Dropped, because their slots or answers do not exist here:
- yes/no or like/dislike answers (1-3, 1-4, 2-11, 2-12, 5-1, 5-2, 5-3, 5-4): our tasks answer with an
  item or a rating;
- item titles (1-2, 1-5, 1-7, 1-8, 1-9): titles are missing for most datasets;
- candidate lists inside the sequential task (2-7 .. 2-10): sequential ranks over all items.
Adapted: 1-10 (P5's held-out rating prompt) names the item by id ("item {item}") instead of its title;
since no P5 checkpoint was trained on it, the change does not affect them.

Held out (`held_out=True`, one per family, P5's unseen-prompt evaluation): 2-13, 5-8, 1-10.
"""

from __future__ import annotations

from paprec_cli.specs import Template

# --- P5 task subgroup 2: sequential recommendation -------------------------------------------------
SEQUENTIAL = [
    Template(
        "2-1",
        "Given the following purchase history of {user} : \n {history} \n "
        "predict next possible item to be purchased by the user ?",
        family="2",
    ),
    Template(
        "2-2",
        "I find the purchase history list of {user} : \n {history} \n "
        "I wonder what is the next item to recommend to the user . Can you help me decide ?",
        family="2",
    ),
    Template(
        "2-3",
        "Here is the purchase history list of {user} : \n {history} \n try to recommend next item to the user",
        family="2",
    ),
    Template(
        "2-4",
        "Given the following purchase history of {user} : \n {history} \n predict next possible item for the user",
        family="2", user_name=True,
    ),
    Template(
        "2-5",
        "Based on the purchase history of {user} : \n {history} \n "
        "Can you decide the next item likely to be purchased by the user ?",
        family="2", user_name=True,
    ),
    Template(
        "2-6",
        "Here is the purchase history of {user} : \n {history} \n What to recommend next for the user ?",
        family="2", user_name=True,
    ),
    Template(
        "2-13",
        "According to the purchase history of {user} : \n {history} \n "
        "Can you recommend the next possible item to the user ?",
        family="2", user_name=True,
        held_out=True,
    ),
]

# --- P5 task subgroup 5 ("traditional"): direct recommendation from a candidate list ---------------
DIRECT = [
    Template(
        "5-5", "Which item of the following to recommend for {user} ? \n {candidates}", family="5", user_name=True
    ),
    Template(
        "5-6",
        "Choose the best item from the candidates to recommend for {user} ? \n {candidates}",
        family="5",
        user_name=True,
    ),
    Template(
        "5-7",
        "Pick the most suitable item from the following list and recommend to {user} : \n {candidates}",
        family="5",
    ),
    Template(
        "5-8",
        "We want to make recommendation for {user} .  Select the best item from these candidates : \n {candidates}",
        family="5",
        held_out=True,
    ),
]

# --- P5 task subgroup 1: rating prediction -----------------------------------------------------------
RATING = [
    Template(
        "1-1",
        "Which star rating will {user} give item {item} ? ( 1 being lowest and 5 being highest )",
        family="1",
    ),
    Template(
        "1-6",
        "What star rating do you think {user} will give item {item} ? ( 1 being lowest and 5 being highest )",
        family="1", user_name=True,
    ),
    # Adapted: P5 writes the item's title here; we use its id (see the module docstring).
    Template(
        "1-10",
        "Predict {user} 's preference towards item {item} ( 1 being lowest and 5 being highest )",
        family="1",
        held_out=True,
    ),
]
