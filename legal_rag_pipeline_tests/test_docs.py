"""The README and docs/ say what the code does: the two commands are still there and parse, every option
docs/cli.md documents is in the command's `--help` (and every option of `--help` is documented), every
`legal-rag ...` written anywhere uses real commands and options, and every internal link resolves."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from legal_rag_pipeline import cli

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

TWO_COMMANDS = [
    (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && legal-rag ingest && "
        'legal-rag search "Thời hạn tạm trú tối đa là bao lâu?"'
    ),
    "bash scripts/test.sh",
]
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])(?![\w-])")


def commands() -> list[str]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sorted(sub.choices)


def help_options(command: str) -> set[str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0
    return set(OPTION.findall(out.getvalue().split("options:", 1)[1])) - {"-h", "--help"}


def sections(text: str) -> dict[str, str]:
    """``## `legal-rag X` `` sections of docs/cli.md by command."""
    found = re.split(r"(?m)^## `legal-rag ([\w-]+)`\s*$", text)
    return dict(zip(found[1::2], found[2::2], strict=True))


def documented_options(section: str) -> set[str]:
    """Options in the synopsis (the first code block) and in the first column of the options table."""
    synopsis = re.search(r"```\n(legal-rag [^\n]*)\n```", section)
    options = set(OPTION.findall(synopsis.group(1))) if synopsis else set()
    for row in re.findall(r"(?m)^\| (`[^|]*`) \|", section):
        options |= set(OPTION.findall(row))
    return options


def test_the_readme_keeps_the_two_commands_and_they_parse():
    text = README.read_text(encoding="utf-8")
    for command in TWO_COMMANDS:
        assert f"```bash\n{command}\n```" in text, command
    assert (REPO / "scripts" / "test.sh").is_file() and (REPO / ".ci" / "run").exists()
    for piece in TWO_COMMANDS[0].split("&&"):
        words = shlex.split(piece)
        if words[0] == "legal-rag":
            cli.build_parser().parse_args(words[1:])  # exits on an unknown command or option


def test_every_option_documented_in_cli_md_is_in_the_commands_help_and_back():
    documented = sections((DOCS / "cli.md").read_text(encoding="utf-8"))
    assert sorted(documented) == commands(), "docs/cli.md needs one section per command"
    for command, section in documented.items():
        have = help_options(command)
        written = documented_options(section)
        assert written <= have, f"legal-rag {command}: documented but not in --help: {sorted(written - have)}"
        assert have <= written, f"legal-rag {command}: in --help but not in docs/cli.md: {sorted(have - written)}"


def test_every_legal_rag_command_written_in_the_docs_is_real():
    known = {c: help_options(c) for c in commands()}
    spans = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        spans += [(page.name, s) for s in re.findall(r"`(legal-rag [^`\n]+)`", text)]
        for block in re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.DOTALL):
            spans += [(page.name, line) for line in re.findall(r"(legal-rag [^\n#&|`]+)", block)]
    assert len(spans) > 40
    for page, span in spans:
        words = span.split()
        if len(words) < 2 or words[1].startswith("["):
            continue
        command = words[1].rstrip(".,;:)")
        if command in {"COMMAND", "X"}:
            continue
        assert command in known, f"{page}: `{span}` names no command"
        for option in OPTION.findall(span):
            assert option in known[command], f"{page}: `{span}`: {option} is not an option of legal-rag {command}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_every_internal_link_resolves():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name}: link to {target} (no such file)"
            if anchor:
                headings = re.findall(r"(?m)^#+ (.+)$", file.read_text(encoding="utf-8"))
                assert anchor in {slug(h) for h in headings}, f"{page.name}: link to {target} (no such heading)"


def test_the_readme_is_short_and_nothing_of_the_old_one_is_lost():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 150, "the README is the newcomer's page: put reference material in docs/"
    headings = {h.strip() for page in PAGES for h in re.findall(r"(?m)^#+ (.+)$", page.read_text(encoding="utf-8"))}
    for old in ("Configuration", "Command line", "How it works", "Which embedded engine", "Automation and the UI",
                "Retrieval quality", "Dense embeddings", "When Hugging Face refuses a call", "Performance",
                "Untrusted files and UI users", "Dependencies, and why", "Production"):
        assert old in headings, f"the README section {old!r} is nowhere in README.md or docs/"
