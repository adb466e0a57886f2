"""What every provider's targets file shares."""

import tomllib
from collections.abc import Sequence
from pathlib import Path

TARGETS_FILE = "targets.toml"
LABEL_CHARS = 80  # a target's keyword or image as shown in a problem


class TargetConfigError(ValueError):
    """The targets file is missing, not TOML, or has invalid entries: every problem found, each
    naming its target, so one pass of ``serp-etl targets check`` shows what to fix."""

    def __init__(
        self, source: str, problems: list[str], valid: Sequence[tuple[int, object]] | None = None
    ) -> None:
        self.source, self.problems = source, list(dict.fromkeys(problems))
        # The entries without a problem of their own, with their numbers in the file: checked
        # further by ``serp-etl targets check``, never posted (a run refuses the whole file).
        self.valid = list(valid or [])
        if len(self.problems) == 1:
            text = f"{source}: {self.problems[0]}"
        else:
            text = f"{source}: {len(self.problems)} problems\n" + "\n".join(
                f"  {problem}" for problem in self.problems
            )
        super().__init__(text)

    @classmethod
    def joined(cls, errors: "list[TargetConfigError]") -> "TargetConfigError":
        """One error holding the problems of several (the providers' parts of one file)."""
        return cls(errors[0].source, [p for error in errors for p in error.problems])


def target_name(provider: str, number: int, label: object) -> str:
    """How a problem names a target: its number in the file and its keyword or image."""
    if not isinstance(label, str) or not label:
        return f"{provider} target #{number}"
    shown = label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 3] + "..."
    return f"{provider} target #{number} ({shown!r})"


def read_targets_file(path: Path) -> str:
    """The targets file's text, or the one problem every provider reports when it is missing."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetConfigError(
            str(path),
            [
                f"no targets file; copy the example data/{TARGETS_FILE} from the repository and "
                "list what to track"
            ],
        ) from None


def read_toml(text: str, source: str) -> dict:
    """The targets file's document, or one line saying why it is not one."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TargetConfigError(source, [f"not valid TOML: {error}"]) from None
    except RecursionError:
        # tomllib recurses once per nesting level: thousands of nested arrays exhaust it.
        raise TargetConfigError(source, ["not a targets file: nested too deeply"]) from None
