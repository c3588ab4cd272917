"""A safe YAML loader for hardware configs and workload specs.

On top of ``yaml.SafeLoader`` it refuses what would otherwise end in a traceback, a hang, or a silently
kept value:

* a duplicate mapping key (reported with both lines, not silently keeping the last);
* a key that is a list or a mapping (``unhashable``);
* nesting deeper than :data:`MAX_DEPTH` levels;
* aliases that expand to more than :data:`MAX_NODES` nodes (the "billion laughs" bomb), checked on the
  node graph before anything is built, so an alias bomb is refused in milliseconds.

Merge keys (``<<: *base``) work as in YAML 1.1.
"""

from __future__ import annotations

import yaml

from sasim.errors import SasimError

#: The deepest nesting accepted (a hardware config is three levels deep).
MAX_DEPTH = 64
#: The most nodes a document may expand to, aliases counted at every use.
MAX_NODES = 100_000


class YamlLimitError(yaml.YAMLError):
    """A YAML document beyond sasim's limits (depth, expanded size, key types)."""


class _CheckedLoader(yaml.SafeLoader):
    """SafeLoader that records every duplicate mapping key with its path and line."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []


def _construct_mapping(loader: _CheckedLoader, node, deep=False):
    loader.flatten_mapping(node)  # resolve merge keys (<<) first, as SafeLoader does
    seen = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise YamlLimitError(f"a key at line {key_node.start_mark.line + 1} is a "
                                 f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'}; keys must be "
                                 "plain names")
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            loader.duplicates.append(
                f"key {key!r} appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})"
            )
        else:
            seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_CheckedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_size(root) -> None:
    """Refuse a node graph deeper than MAX_DEPTH or expanding to more than MAX_NODES nodes (memoized per node,
    so the check is linear in the graph even when aliases make the expansion exponential)."""
    sizes: dict[int, int] = {}

    def size(node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels (line {node.start_mark.line + 1})")
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        if total > MAX_NODES:
            raise YamlLimitError(f"the document expands to more than {MAX_NODES:,} values (aliases counted at every "
                                 "use); a config is far smaller: remove the repeated aliases")
        sizes[id(node)] = total
        return total

    if root is not None:
        size(root, 0)


def load_yaml(text: str) -> tuple[object, list[str]]:
    """Parse YAML text; return ``(data, duplicate-key problems)``.

    Raises ``yaml.YAMLError`` on bad syntax, and :class:`YamlLimitError` (a ``YAMLError``) on a document
    beyond the limits above.
    """
    loader = _CheckedLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise YamlLimitError(f"nesting deeper than {MAX_DEPTH} levels") from None
        _check_size(root)
        data = loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()
    return data, loader.duplicates


def parse_yaml(text: str, source: str) -> tuple[object, list[str]]:
    """:func:`load_yaml`, with any YAML problem as one :class:`~sasim.errors.SasimError` naming ``source`` and
    the line."""

    try:
        return load_yaml(text)
    except YamlLimitError as exc:
        raise SasimError(f"{source} is refused: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SasimError(f"{source} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}; "
                         "fix the syntax") from None


def read_text_file(path, what: str = "file") -> str:
    """A UTF-8 text file's content, or one :class:`~sasim.errors.SasimError` naming the file (and, for bytes that
    are not UTF-8, the byte offset)."""

    try:
        raw = open(path, "rb").read()
    except OSError as exc:
        raise SasimError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SasimError(f"{what} {path} is not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r}); "
                         "save it as UTF-8") from None
