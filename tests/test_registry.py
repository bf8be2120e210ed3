"""The tagged registry: eager entries (``register``) and declared ones (``declare``), whose
module is imported only when the object is asked for."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from fedssl.common.registry import Registry, import_target


def _in_fresh_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


class TestDeclared:
    def test_names_tags_membership_iteration_and_len_import_nothing(self):
        # Prepare: a stdlib module no interpreter loads at start-up.
        out = _in_fresh_python("""
            import sys
            from fedssl.common.registry import Registry
            assert "wave" not in sys.modules
            reg = Registry("thing")
            reg.declare("w", "wave:open", kind="audio")
            reg.register("e", len, kind="builtin")
            # Execute: everything that may not import.
            asked = (reg.names(kind="audio"), reg.tags("w"), "w" in reg, list(reg), len(reg),
                     repr(reg), reg.target("w"), reg.is_loaded("w"))
            print("wave" in sys.modules, asked)
            # Execute: the object itself.
            obj = reg.get("w")
            print("wave" in sys.modules, obj is sys.modules["wave"].open, reg.is_loaded("w"))
        """)
        before, after = out.splitlines()
        assert before.startswith("False (('w',), {'kind': 'audio'}, True, ['w', 'e'], 2,")
        assert "'wave:open', False)" in before
        assert after == "True True True"

    def test_getitem_and_values_import_what_they_return(self):
        reg: Registry = Registry("thing")
        reg.declare("dedent", "textwrap:dedent")
        assert reg["dedent"] is textwrap.dedent
        assert list(reg.values()) == [textwrap.dedent]
        with pytest.raises(KeyError):
            reg["nope"]

    def test_bind_fixes_leading_arguments(self):
        reg: Registry = Registry("check")
        reg.declare("two", "operator:mul", bind=(2,))
        assert reg.get("two")(21) == 42

    def test_a_dotted_attribute_is_followed(self):
        assert import_target("os.path:join") is __import__("os").path.join
        assert import_target("collections:OrderedDict.fromkeys")("ab") == {"a": None, "b": None}

    @pytest.mark.parametrize("target", ["textwrap", "textwrap:", ":dedent", "", None])
    def test_a_malformed_target_is_refused_when_declared(self, target):
        reg: Registry = Registry("thing")
        with pytest.raises(ValueError, match=r"'package\.module:attr'"):
            reg.declare("t", target)
        assert "t" not in reg

    def test_a_missing_module_is_named_when_asked_for(self):
        reg: Registry = Registry("model")
        reg.declare("ghost", "fedssl.no_such_module:build")
        with pytest.raises(ValueError, match=r"model 'ghost' is declared as "
                           r"'fedssl.no_such_module:build', which does not load: .*cannot "
                           r"import 'fedssl.no_such_module'"):
            reg.get("ghost")
        assert not reg.is_loaded("ghost")

    def test_a_missing_attribute_is_named_when_asked_for(self):
        reg: Registry = Registry("model")
        reg.declare("ghost", "textwrap:no_such_function")
        with pytest.raises(ValueError, match=r"'textwrap:no_such_function'.*has no attribute "
                           "'no_such_function'"):
            reg.get("ghost")


class TestNames:
    def test_duplicates_are_refused_across_both_ways(self):
        reg: Registry = Registry("thing")
        reg.register("a", 1)
        reg.declare("b", "textwrap:dedent")
        with pytest.raises(ValueError, match="thing 'a' is already registered"):
            reg.declare("a", "textwrap:dedent")
        with pytest.raises(ValueError, match="thing 'b' is already registered"):
            reg.register("b", 2)
        decorator = reg.register("c")
        reg.declare("c", "textwrap:indent")
        with pytest.raises(ValueError, match="already registered"):
            decorator(3)  # a decorator obtained before the declaration must not overwrite it
        assert reg.target("c") == "textwrap:indent" and reg.get("a") == 1

    @pytest.mark.parametrize("name", ["", None, 3])
    def test_a_name_must_be_a_non_empty_string(self, name):
        with pytest.raises(ValueError, match="non-empty string"):
            Registry("thing").declare(name, "textwrap:dedent")

    def test_an_unknown_name_lists_the_valid_ones_without_importing(self):
        reg: Registry = Registry("dataset")
        reg.declare("x", "fedssl.no_such_module:x")
        reg.register("y", 1)
        for ask in (reg.get, reg.tags, reg.target, reg.is_loaded):
            with pytest.raises(ValueError, match="unknown dataset 'z'; valid names: 'x', 'y'"):
                ask("z")
        assert "z" not in reg

    def test_order_is_the_order_of_entries_whichever_way_made(self):
        reg: Registry = Registry("thing")
        reg.declare("b", "textwrap:dedent", sides=3)
        reg.register("a", 1, sides=4)
        reg.declare("c", "textwrap:indent", sides=(3, 4))
        assert reg.names() == ("b", "a", "c")
        assert reg.names(sides=4) == ("a", "c")
