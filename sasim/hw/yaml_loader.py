"""A YAML loader that reports duplicate keys instead of silently keeping the last one."""

from __future__ import annotations

import yaml


class _DuplicateKeyLoader(yaml.SafeLoader):
    """SafeLoader that records every duplicate mapping key with its path and line."""

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []


def _construct_mapping(loader: _DuplicateKeyLoader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            loader.duplicates.append(
                f"key {key!r} appears twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1})"
            )
        else:
            seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_DuplicateKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str) -> tuple[object, list[str]]:
    """Parse YAML text; return ``(data, duplicate-key problems)``. Raises ``yaml.YAMLError`` on bad syntax."""
    loader = _DuplicateKeyLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    return data, loader.duplicates
