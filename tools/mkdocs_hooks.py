"""mkdocs hooks (mkdocs.yml ``hooks:``) that keep the site honest and self-contained.

- Before the build, the config reference must match the schema (tools/config_reference.py)
  and the commands page the commands' help (tools/cli_reference.py).
- A page may link to a file of the repository outside docs/ (``../../torchrl_cli/models/
  ppo_clip.py``), which is how the page reads on GitHub. The site gets a page holding that file's
  text, and the link goes there; a link to a file that does not exist is a warning, so that
  ``mkdocs build --strict`` fails on it.
- In a table row, a pipe inside code is written ``\\|`` (GitHub's tables need it there);
  Python-Markdown's tables keep the backslash in code, so the site gets a bare ``|`` (its tables
  do not split a row at a pipe inside code).
"""

import logging
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIR = "source"  # the generated pages: source/<path in the repo>.md
LINK = re.compile(r"(\]\()([^)\s]+)(\))")
LANGUAGES = {".py": "python", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".md": "markdown",
             ".json": "json", ".sh": "bash", "Makefile": "makefile"}
log = logging.getLogger("mkdocs.hooks.torchrl_cli")
# the tools that write reference pages, each with a --check that fails when its page is stale
GENERATED = ("config_reference.py", "cli_reference.py")


def on_pre_build(config) -> None:
    for tool in GENERATED:
        check = subprocess.run([sys.executable, str(ROOT / "tools" / tool), "--check"],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise PluginError(check.stderr.strip() or f"a page {tool} writes is stale")


def repo_target(page_uri: str, target: str, docs_dir: Path) -> Path | None:
    """The repository file a relative link of the page ``page_uri`` names, when it lies
    outside docs/; None for links into docs/, absolute URLs and anchors."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return None
    path = target.split("#", 1)[0]
    if not path:
        return None
    resolved = (docs_dir / PurePosixPath(page_uri).parent / path).resolve()
    if resolved.is_relative_to(docs_dir.resolve()) or not resolved.is_relative_to(ROOT):
        return None
    return resolved


def source_page(relative: str) -> str:
    return f"{SOURCE_DIR}/{relative}.md"


def on_files(files: Files, config) -> Files:
    docs_dir = Path(config["docs_dir"])
    wanted: set[Path] = set()
    for file in list(files.documentation_pages()):
        for _, target, _ in LINK.findall(Path(file.abs_src_path).read_text()):
            path = repo_target(file.src_uri, target, docs_dir)
            if path is not None and path.is_file():
                wanted.add(path)
    for path in sorted(wanted):
        relative = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        language = LANGUAGES.get(path.suffix, LANGUAGES.get(path.name, "text"))
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
        content = (f"# {relative}\n\n{fence}{language} linenums=\"1\"\n{text.rstrip()}\n{fence}\n")
        files.append(File.generated(config, source_page(relative), content=content,
                                    inclusion=InclusionLevel.NOT_IN_NAV))
    return files


CODE_SPAN = re.compile(r"`[^`\n]*`")


def unescape_table_code(markdown: str) -> str:
    """``\\|`` inside code in a table row (a line starting with ``|``, outside a fenced
    block) as ``|``."""
    lines, fenced = markdown.split("\n"), False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.lstrip().startswith("|"):
            lines[i] = CODE_SPAN.sub(lambda m: m.group(0).replace("\\|", "|"), line)
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    docs_dir = Path(config["docs_dir"])
    if page.file.src_uri.startswith(SOURCE_DIR + "/"):  # a source page: the file's text as is
        return markdown
    markdown = unescape_table_code(markdown)
    here = PurePosixPath(page.file.src_uri).parent

    def rewrite(match: re.Match) -> str:
        target = match.group(2)
        path = repo_target(page.file.src_uri, target, docs_dir)
        if path is None:
            return match.group(0)
        if not path.is_file():
            log.warning("%s links to %s, which is not a file of the repository",
                        page.file.src_uri, target)
            return match.group(0)
        anchor = target.split("#", 1)[1] if "#" in target else ""
        new = os.path.relpath(source_page(path.relative_to(ROOT).as_posix()), here)
        return f"{match.group(1)}{new}{'#' + anchor if anchor else ''}{match.group(3)}"

    return LINK.sub(rewrite, markdown)
