"""Writes docs/reference/config.md, every config key with its type, default and meaning, from
torchrl_cli/config/schema.py (the dataclasses, their field comments and docstrings) and the
options of each config group under conf/.

    python tools/config_reference.py           # rewrite the page
    python tools/config_reference.py --check   # exit 1 if the page differs from the schema

tests/test_docs.py and the mkdocs build (tools/mkdocs_hooks.py) run the check, so the page
cannot drift from the schema.
"""

import argparse
import ast
import dataclasses
import io
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "torchrl_cli" / "config" / "schema.py"
CONF = ROOT / "conf"
PAGE = ROOT / "docs" / "reference" / "config.md"

sys.path.insert(0, str(ROOT))
from torchrl_cli.config import schema  # noqa: E402  (omegaconf only: cheap to import)

# (section title, key prefix, dataclass, note) in page order; the agent's policy has a section
# per family, each listing only the keys its class adds
SECTIONS = [
    ("Top level", "", schema.Config, None),
    ("env", "env.", schema.EnvConfig, None),
    ("env.atari", "env.atari.", schema.AtariConfig,
     "null except for ALE ids, whose env files set it (`{}`: these defaults)."),
    ("env.pixels", "env.pixels.", schema.PixelsConfig, None),
    ("net", "net.", schema.NetConfig, None),
    ("memory", "memory.", schema.MemoryConfig, "Chosen with `memory=lstm` or `memory=gru`."),
    ("agent", "agent.", schema.AgentConfig, None),
    ("agent.policy: every policy model", "agent.policy.", schema.ModelConfig,
     "`agent.value` takes these keys too; `num_epochs`, `num_mini_batches`, `clip_grad_norm` "
     "and `lr_schedule` follow the agent's unless set here."),
    ("agent.policy: every policy-gradient model", "agent.policy.", schema.PGModelConfig, None),
    ("agent.policy.net", "agent.policy.net.", schema.ModelNetConfig,
     "`agent.value.net` takes the same keys."),
    ("agent.policy.sde", "agent.policy.sde.", schema.SDEConfig, None),
    ("agent.policy: ppo_clip", "agent.policy.", schema.PPOClipModelConfig, None),
    ("agent.policy: surrogate_pg and ppo_adaptive", "agent.policy.",
     schema.SurrogatePGModelConfig, None),
    ("agent.policy: ppo_adaptive", "agent.policy.", schema.PPOAdaptiveModelConfig, None),
    ("agent.value", "agent.value.", schema.ValueModelConfig,
     "`agent.value=null` trains no value model (no baseline)."),
    ("agent.vtarget", "agent.vtarget.", schema.VTargetConfig, None),
    ("agent: ippo and mappo", "agent.", schema.IPPOAgentConfig,
     "Many agents (`env=pettingzoo:<module>`); `agent=mappo` sets `critic: central`. The "
     "policy is `agent.policy: ppo_clip`'s."),
    ("logger", "logger.", schema.LoggerConfig, None),
    ("logger.mlflow", "logger.mlflow.", schema.MlflowConfig, None),
    ("logger.wandb", "logger.wandb.", schema.WandbConfig, None),
    ("guard", "guard.", schema.GuardConfig, None),
    ("tune", "tune.", schema.TuneConfig,
     "Set by `hparams_search=<preset>` for `torchrl tune`; null in runs."),
    ("tune.sampler", "tune.sampler.", schema.SamplerConfig, None),
    ("tune.pruner", "tune.pruner.", schema.PrunerConfig, None),
]
GROUPS = [  # (group, folder under conf/, what an option is)
    ("agent", "agent", "the algorithm: its rollout, update and models"),
    ("agent/advantage", "agent/advantage", "the advantage estimator"),
    ("env", "env", "an env with its own settings; any other registered Gymnasium id works too"),
    ("net", "net", "the layers of the policy and value networks"),
    ("memory", "memory", "a recurrent layer in each model (none by default)"),
    ("experiment", "experiment", "a named preset (only what differs)"),
    ("hparams_search", "hparams_search", "an Optuna search space for `torchrl tune`"),
    ("hydra/launcher", "hydra/launcher",
     "where a sweep's jobs run (besides Hydra's `basic`, `joblib`, `ray`, `submitit_*`)"),
]


def field_comments() -> dict[tuple[str, str], str]:
    """(class, field) -> the comment on the field's line, after the comment lines right above
    it (a comment block that introduces several fields counts for the first)."""
    source = SCHEMA.read_text()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if not isinstance(item, ast.AnnAssign):
                continue
            above, line = [], item.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            text = " ".join([*above, comments.get(item.end_lineno, "")]).strip()
            found[(node.name, item.target.id)] = text
    return found


def annotations() -> dict[tuple[str, str], str]:
    """(class, field) -> the annotation as written."""
    out = {}
    for node in ast.parse(SCHEMA.read_text()).body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign):
                    out[(node.name, item.target.id)] = ast.unparse(item.annotation)
    return out


def default_of(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return ""
    if dataclasses.is_dataclass(value):
        return "(below)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "???":
        return "required"
    if isinstance(value, dict) and "_target_" in value:
        return ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                         for k, v in value.items())
    return str(value)


def own_fields(cls: type) -> list[dataclasses.Field]:
    """The fields ``cls`` declares or redeclares (a subclass section lists only its own)."""
    declared = cls.__dict__.get("__annotations__", {})
    return [f for f in dataclasses.fields(cls) if f.name in declared]


def cell(text: str) -> str:
    return text.replace("``", "`").replace("|", "\\|").replace("\n", " ")


def first_paragraph(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    if doc.startswith(cls.__name__ + "("):  # dataclass's generated signature: no docstring
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def group_options(folder: str) -> list[str]:
    base = CONF / folder
    return sorted(
        str(p.relative_to(base).with_suffix(""))
        for p in base.rglob("*.yaml")
        if folder != "agent" or p.parent == base
    )


def render() -> str:
    comments, types = field_comments(), annotations()
    out = [
        "# Config reference",
        "",
        "Every key of the composed config, with its type, its default and what it means. "
        "This page is generated from "
        "[`torchrl_cli/config/schema.py`](../../torchrl_cli/config/schema.py) by "
        "`python tools/config_reference.py`; a test and the site build fail when it no longer "
        "matches the schema. A group option's YAML file may change a default "
        "(`torchrl configs <agent> <env>` shows what the env and tuned files set, "
        "`torchrl train --cfg job` the composed result).",
        "",
        "## Config groups",
        "",
        "Chosen with `group=option` (`agent/advantage=discounted_returns`); "
        "[Configuration](../concepts/configuration.md) says how they compose.",
        "",
        "| group | options | an option is |",
        "|---|---|---|",
    ]
    for group, folder, meaning in GROUPS:
        options = ", ".join(f"`{o}`" for o in group_options(folder))
        out.append(f"| `{group}` | {options} | {meaning} |")
    out += [
        "",
        "`tuned/<agent>/<env>.yaml` is not chosen: it applies by itself when the pair has one "
        f"({len(list((CONF / 'tuned').rglob('*.yaml')))} files ship), and so does "
        "`tuned_memory/<agent>/<env>/<memory>.yaml` for the pair with that `memory=` option "
        f"({len(list((CONF / 'tuned_memory').rglob('*.yaml')))} ship; the pair's file wins "
        "where both set a key).",
        "",
        "## agent.advantage",
        "",
        "The `agent/advantage` group's options and their keys (in their YAML files, "
        "[`conf/agent/advantage/`](../../conf/agent/advantage/gae.yaml)):",
        "",
        "| option | keys |",
        "|---|---|",
    ]
    for option in group_options("agent/advantage"):
        lines = (CONF / "agent" / "advantage" / f"{option}.yaml").read_text().splitlines()
        keys = [line.split(":", 1) for line in lines if line and not line.startswith(("#", " "))]
        shown = ", ".join(f"`{k.strip()}: {v.strip()}`" for k, v in keys)
        out.append(f"| `{option}` | {cell(shown)} |")
    for title, prefix, cls, note in SECTIONS:
        out += ["", f"## {title}", ""]
        about = first_paragraph(cls)
        if about:  # prose, not a table cell: pipes stay as they are
            out += [about.replace("``", "`"), ""]
        if note:
            out += [note, ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for f in own_fields(cls):
            if f.name == "_target_" and cls is schema.ModelConfig:
                continue  # each family's own section names its class
            key = f"{prefix}{f.name}"
            meaning = comments.get((cls.__name__, f.name), "")
            kind = types.get((cls.__name__, f.name), "")
            out.append(
                f"| `{key}` | `{cell(kind)}` | `{cell(default_of(f))}` | {cell(meaning)} |"
                if default_of(f)
                else f"| `{key}` | `{cell(kind)}` |  | {cell(meaning)} |"
            )
    return "\n".join(out) + "\n"


def undocumented() -> list[str]:
    """Fields without a comment and without a docstring that explains them."""
    comments = field_comments()
    return [
        f"{cls.__name__}.{f.name}"
        for _, _, cls, _ in SECTIONS
        for f in own_fields(cls)
        if not comments.get((cls.__name__, f.name)) and f.name != "_target_"
    ]


def write_or_check(page: Path, text: str, source: str, script: str, description: str) -> int:
    """A generated page's command line: write ``text`` to ``page``, or with ``--check`` exit 1
    (naming ``source`` and the ``script`` that rewrites it) when the page differs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args()
    if args.check:
        if not page.is_file() or page.read_text() != text:
            print(f"{page.relative_to(ROOT)} does not match {source}; "
                  f"run: python tools/{script}", file=sys.stderr)
            return 1
        return 0
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text)
    print(f"wrote {page.relative_to(ROOT)}")
    return 0


def main() -> int:
    return write_or_check(PAGE, render(), "the schema", "config_reference.py",
                          __doc__.splitlines()[0])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
