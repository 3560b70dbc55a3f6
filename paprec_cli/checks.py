"""Range checks shared by several commands, run before any work (nothing loaded, nothing written).

Each raises `PaprecError` naming the option and the accepted range.
"""

from __future__ import annotations

from collections.abc import Mapping

from paprec_cli.errors import PaprecError

#: numpy's and torch's seeding accept any non-negative integer; 2**32 - 1 keeps every seed portable
#: (numpy's legacy RandomState and CUDA generators take 32-bit seeds).
MAX_SEED = 2**32 - 1
#: Trigger tokens of one prompt (prefix + suffix + personal). PAP-REC uses a handful; hundreds only make
#: every step slower (each slot is one search step) and the input longer, and 100,000 runs out of memory.
MAX_TRIGGER_TOKENS = 64


def check_seed(seed: int, option: str = "--seed") -> int:
    """`seed` itself, when it is an integer in [0, MAX_SEED]."""
    if not 0 <= seed <= MAX_SEED:
        raise PaprecError(f"{option} {seed}: expected an integer from 0 to {MAX_SEED}")
    return seed


def check_plain_name(name: str, option: str = "--name") -> str:
    """`name` itself when it can name a folder in the home: not empty, no slash or backslash, not starting
    with '.' (hidden folders such as `models/.train-state` hold paprec's own state) or '-', no control
    character. Raises PaprecError naming the option."""
    if (not name.strip() or any(c in name for c in "/\\") or name[0] in ".-" or name != name.strip()
            or any(ord(c) < 32 for c in name)):
        raise PaprecError(f"{option} {name!r}: expected a plain name (letters, digits, '-', '_' or '.'; no "
                          "slashes, not starting with '.' or '-'); for example --name my-model")
    return name


def check_options(options: Mapping[str, object]) -> None:
    """The checks that apply to a command's parsed options by name (today: `seed`), before the command runs."""
    seed = options.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        check_seed(seed)
