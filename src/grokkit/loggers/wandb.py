"""Weights & Biases: every metrics row as W&B history, the settings as config, the summary.

Each run folder is one W&B run, named after the folder, in the project ``$GROKKIT_WANDB_PROJECT``
(default ``grokkit``), with its files under run_dir/wandb. History keys are those of TensorBoard
(``loss/train``, ``accuracy/val``, ... see grokkit.loggers.METRIC_TAGS) at W&B step = the row's
step; the summary gets every field of summary.json when the run closes.

Identity: a random id is made when the run first logs and kept in run_dir/wandb/grokkit-run-id;
a resumed run reads it back and continues the same W&B run (``resume="allow"``). It is stored
rather than derived because nothing derivable is both stable and unique: folder names repeat
across sweeps (seed_0, ...) that share a project, a path changes when a folder is moved to
another machine to be resumed, and identical settings are what repeated runs have.

Several runs at once: a population trains its runs in lockstep, so their W&B runs are all open
in one process. ``reinit="create_new"`` lets them coexist, and each logger logs through its own
Run object (never the global ``wandb.log``).

Online or offline: see ``default_mode``. Offline runs are written under run_dir/wandb and can be
uploaded later with ``wandb sync``.

Resume: W&B never rewrites a step it has. A resumed online run starts at the step after the last
one W&B holds, and rows before that are skipped (W&B would drop them with a warning each); they
are rows a killed process logged after its checkpoint, and the resumed run's rows at those steps
differ from them only in wall_seconds, training being deterministic. An offline resume writes a
second offline folder with the same id; ``wandb sync`` of both gives one run.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import wandb
from wandb.errors import AuthenticationError

from grokkit import runs
from grokkit.config import RunConfig
from grokkit.files import ensure_real_folder
from grokkit.loggers import METRIC_TAGS

ID_FILE = Path("wandb") / "grokkit-run-id"
DEFAULT_PROJECT = "grokkit"


def run_id(run_dir: Path) -> str:
    """The W&B id of this run folder: read back, or made and stored on first use."""
    path = Path(run_dir) / ID_FILE
    if path.is_file():
        stored = runs.read_regular_bytes(path).decode("utf-8", errors="replace").strip()
        if stored:
            return stored
    new = secrets.token_hex(6)  # 12 characters of [0-9a-f]: valid in W&B, and unique enough
    runs.atomic_write_text(path, new + "\n")
    return new


def default_mode() -> str | None:
    """``None`` (W&B decides, from the user's own settings) when the user has configured W&B,
    else ``"offline"``: without an account, a run must neither prompt for a login nor try the
    network, and its offline files can still be uploaded later.

    Configured means: WANDB_MODE is set; ``wandb offline`` / ``wandb disabled`` was run (W&B's
    settings file then holds a mode other than online); or W&B has credentials: WANDB_API_KEY,
    WANDB_IDENTITY_TOKEN_FILE, an api_key in its settings, or the .netrc entry that
    ``wandb login`` writes. All of this is read from the environment and files, without network.
    """
    if (
        os.environ.get("WANDB_MODE")
        or os.environ.get("WANDB_API_KEY")
        or os.environ.get("WANDB_IDENTITY_TOKEN_FILE")
    ):
        return None
    try:  # wandb's own reading of its settings files and .netrc, as in wandb 0.31
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth

        settings = wandb_setup.singleton().settings  # loads settings; starts no process
        if settings.mode not in ("online", "run") or settings.api_key:
            return None
        return None if wbauth.read_netrc_auth(host=settings.base_url) else "offline"
    except AuthenticationError:
        return None  # credentials are there but malformed: let wandb.init say so
    except (ImportError, AttributeError):  # other versions keep these elsewhere
        return "offline"


class WandbLogger:
    """One run folder as one W&B run; several may be open at once in one process."""

    def __init__(self, run_dir: Path, config: RunConfig) -> None:
        self.run_dir = Path(run_dir)
        ensure_real_folder(self.run_dir / ID_FILE.parent)  # W&B writes there: never through a link
        self._run = wandb.init(
            project=os.environ.get("GROKKIT_WANDB_PROJECT") or DEFAULT_PROJECT,
            name=self.run_dir.name,
            id=run_id(self.run_dir),
            resume="allow",
            reinit="create_new",
            dir=str(self.run_dir),
            config=config.flat_dict(),
            mode=default_mode(),
            # The console is the population's, shared by all its runs: it belongs to none of them.
            settings=wandb.Settings(console="off"),
        )
        # Online and resumed: the step after the last one W&B holds; otherwise 0.
        self._first_step = self._run.starting_step

    @property
    def run(self):
        """The wandb Run object."""
        return self._run

    def log_row(self, row: dict) -> None:
        step = row["step"]
        if step < self._first_step:
            return
        values = {tag: row[c] for c, tag in METRIC_TAGS.items() if row.get(c) is not None}
        values.update(
            {
                "weight_norm/" + c.removeprefix("norm_"): v
                for c, v in row.items()
                if c.startswith("norm_") and v is not None
            }
        )
        self._run.log(values, step=step)

    def close(self, summary: dict) -> None:
        self._run.summary.update(summary)
        self._run.finish()
