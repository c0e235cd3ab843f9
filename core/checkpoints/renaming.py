"""The one engine that renames checkpoint keys onto canonical (official Wan) names.

A layout is a table of rules `(pattern, template)`. The pattern must match the WHOLE key
(re.fullmatch) and the first rule that matches decides: a string template is a `re` expansion
(`\\1`, `\\g<name>`), a function builds the name from the match (index arithmetic), and None drops
a tensor the model never reads. A key that no rule explains is an error naming the file and the
key, never skipped, so a file of an unknown variant cannot load half its weights. A layout may end
with a `finish` step for what renaming cannot do (splits, merges, reshapes), and may name its
`targets`: the canonical names that exist, so a key renamed onto anything else is unexplained too.

Tables are built from smaller facts with `under_prefix` (a file prefix such as ComfyUI's) and
`compose` (keys that are `<module>.<parameter>`: one module table serves every parameter spelling).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterable, Optional, Union

import torch

from .io import CheckpointError

Template = Union[str, Callable[[re.Match], Optional[str]], None]
Rule = tuple[str, Template]
Tensors = dict[str, torch.Tensor]

_SHOWN_KEYS = 5  # keys quoted in an error: enough to recognise the file, short enough to read


@dataclass(frozen=True)
class KeyLayout:
    """One way checkpoint files spell their keys, as rules onto the canonical names."""

    name: str  # says which layout in errors, e.g. "diffusers Wan DiT"
    rules: tuple[Rule, ...]
    # Patterns of the names the rules may produce; a key renamed to anything else is unexplained.
    # Lets one module table serve every parameter spelling (empty: any name).
    targets: tuple[str, ...] = ()
    finish: Optional[Callable[[Tensors], Tensors]] = None  # after renaming: reshapes, merges
    hint: str = ""  # appended to the unknown-key error: what the file may be, what to load instead

    @cached_property
    def _compiled(self) -> tuple[tuple[re.Pattern, Template], ...]:
        return tuple((re.compile(pattern), template) for pattern, template in self.rules)

    @cached_property
    def _targets(self) -> Optional[re.Pattern]:
        return re.compile("|".join(f"(?:{p})" for p in self.targets)) if self.targets else None

    def _name(self, key: str) -> Union[str, None, object]:
        """The canonical name of `key`, None when dropped, _UNEXPLAINED when no rule explains it."""
        for pattern, template in self._compiled:
            match = pattern.fullmatch(key)
            if match:
                name = _expand(match, template)
                if name is None or self._targets is None or self._targets.fullmatch(name):
                    return name
                return _UNEXPLAINED  # renamed onto a name the canonical layout does not have
        return _UNEXPLAINED

    def unexplained(self, keys: Iterable[str]) -> list[str]:
        """Keys no rule of this layout explains, in file order."""
        return [key for key in keys if self._name(key) is _UNEXPLAINED]

    def canonical_names(self, keys: Iterable[str], source: str) -> dict[str, Optional[str]]:
        """key -> canonical name (None: dropped). CheckpointError for a key no rule explains, or for
        two keys that would become one tensor."""
        names = {key: self._name(key) for key in keys}
        unknown = [key for key, name in names.items() if name is _UNEXPLAINED]
        if unknown:
            raise CheckpointError(
                f"{source}: {len(unknown)} key(s) that no rule of the {self.name} layout explains, "
                f"first: {unknown[:_SHOWN_KEYS]}. {self.hint}".rstrip()
            )
        owner: dict[str, str] = {}
        for key, name in names.items():
            if name is not None and owner.setdefault(name, key) != key:
                raise CheckpointError(
                    f"{source}: keys {owner[name]!r} and {key!r} both hold {name!r} ({self.name} layout); "
                    f"the file repeats a tensor under two spellings: keep one"
                )
        return names

    def to_canonical(self, tensors: Tensors, source: str) -> Tensors:
        """The tensors under canonical names (see `canonical_names`), then `finish` if any."""
        names = self.canonical_names(tensors, source)
        out = {name: tensors[key] for key, name in names.items() if name is not None}
        return self.finish(out) if self.finish is not None else out


_UNEXPLAINED = object()


def _expand(match: re.Match, template: Template) -> Optional[str]:
    if template is None:
        return None
    return match.expand(template) if isinstance(template, str) else template(match)


def _expander(pattern: str, template: Template) -> Callable[[str], Optional[str]]:
    """The rule applied to a text that `pattern` is known to match whole (a part of a longer key)."""
    compiled = re.compile(pattern)
    return lambda text: _expand(compiled.fullmatch(text), template)


def identity(patterns: Iterable[str]) -> tuple[Rule, ...]:
    """Rules that keep keys already under canonical names."""
    return tuple((pattern, r"\g<0>") for pattern in patterns)


def dropped(patterns: Iterable[str]) -> tuple[Rule, ...]:
    """Rules for tensors a file carries and the model never reads."""
    return tuple((pattern, None) for pattern in patterns)


def under_prefix(prefix: str, rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """The same rules for keys behind `prefix` (a pattern; its groups are not seen by the templates)."""
    out = []
    for pattern, template in rules:
        expand = _expander(pattern, template)
        wrapped = None if template is None else (lambda m, expand=expand: expand(m["_rest"]))
        out.append((rf"{prefix}(?P<_rest>{pattern})", wrapped))
    return tuple(out)


def compose(heads: Iterable[Rule], tails: Iterable[Rule]) -> tuple[Rule, ...]:
    """Rules for keys `<head>.<tail>`, named `<new head>.<new tail>`.

    Each table is written once for its own part: a module table (`attn1.to_q` -> `self_attn.q`)
    composed with parameter spellings (`weight|bias`) or LoRA part spellings (`lora_A.weight`).
    A None on either side drops the key.
    """
    tails = tuple(tails)
    tail_pattern = "|".join(f"(?:{pattern})" for pattern, _ in tails)
    tail_rules = tuple((re.compile(pattern), template) for pattern, template in tails)

    def rename_tail(text: str) -> Optional[str]:
        return next(_expand(m, t) for p, t in tail_rules if (m := p.fullmatch(text)))

    out = []
    for pattern, template in heads:
        rename_head = _expander(pattern, template)

        def joined(m: re.Match, rename_head=rename_head) -> Optional[str]:
            head, tail = rename_head(m["_head"]), rename_tail(m["_tail"])
            return None if head is None or tail is None else f"{head}.{tail}"

        out.append((rf"(?P<_head>{pattern})\.(?P<_tail>{tail_pattern})", None if template is None else joined))
    return tuple(out)
