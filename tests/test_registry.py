from __future__ import annotations

import pytest

from afterimage_cli.errors import UnknownComponentError
from afterimage_cli.registry import Registry, load_dotted, storage


def test_builtin_names_resolve() -> None:
    from afterimage_cli.storage.jsonl import JSONLStorage

    assert storage.get("jsonl") is JSONLStorage
    assert "sqlite" in storage.names()


def test_unknown_name_lists_known_and_suggests() -> None:
    with pytest.raises(UnknownComponentError) as info:
        storage.get("jsnol")
    msg = str(info.value)
    assert "unknown storage 'jsnol'" in msg and "did you mean 'jsonl'" in msg and "known: jsonl, sqlite" in msg


def test_dotted_path_loads_user_class() -> None:
    reg = Registry("widgets")
    assert reg.get("collections:OrderedDict").__name__ == "OrderedDict"


def test_dotted_path_errors() -> None:
    with pytest.raises(UnknownComponentError, match="cannot import module"):
        load_dotted("no_such_module_xyz:Thing")
    with pytest.raises(UnknownComponentError, match="has no attribute"):
        load_dotted("collections:NoSuchThing")


def test_entry_points_are_read(monkeypatch) -> None:
    class FakeEP:
        name = "plugged"
        value = "collections:Counter"

    import afterimage_cli.registry as registry_module

    monkeypatch.setattr(
        registry_module, "entry_points", lambda group: [FakeEP()] if group == "afterimage.widgets" else []
    )
    reg = Registry("widgets")
    assert reg.get("plugged").__name__ == "Counter"
    assert reg.names() == ["plugged"]
