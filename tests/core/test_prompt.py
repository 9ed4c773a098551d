"""Prompt templates, the composer and the versioned registry."""

from __future__ import annotations

import pytest

from gecko.core.prompt import PromptComposer, PromptRegistry, PromptTemplate
from gecko.errors import PromptError


def test_render_replaces_variables() -> None:
    assert PromptTemplate("Hi {name}!", variables=["name"]).render(name="Ann") == "Hi Ann!"


def test_variables_default_to_the_placeholders() -> None:
    assert PromptTemplate("{a} and {b} and {a}").variables == ("a", "b")


def test_double_braces_are_literal() -> None:
    assert PromptTemplate('Reply {{"x": {n}}}').render(n=1) == 'Reply {"x": 1}'


def test_validate_reports_undeclared_variable() -> None:
    with pytest.raises(PromptError, match="undeclared variables used: topic"):
        PromptTemplate("About {topic}", variables=[]).validate()


def test_validate_reports_unused_variable() -> None:
    with pytest.raises(PromptError, match="never used: tone"):
        PromptTemplate("About {topic}", variables=["topic", "tone"]).validate()


def test_validate_passes_for_matching_declaration() -> None:
    PromptTemplate("About {topic}", variables=["topic"]).validate()


def test_render_reports_missing_value() -> None:
    with pytest.raises(PromptError, match="missing values for prompt variables: name"):
        PromptTemplate("Hi {name}").render()


def test_render_reports_unknown_value() -> None:
    with pytest.raises(PromptError, match="unknown prompt variables: nmae"):
        PromptTemplate("Hi {name}").render(name="a", nmae="b")


def test_defaults_fill_missing_values() -> None:
    assert PromptTemplate("Hi {name}", defaults={"name": "there"}).render() == "Hi there"


def test_attribute_placeholders_are_rejected() -> None:
    with pytest.raises(PromptError, match="plain variable name"):
        PromptTemplate("{user.__class__}")


def test_unbalanced_braces_are_a_prompt_error() -> None:
    with pytest.raises(PromptError, match="syntax"):
        PromptTemplate("oops {")


def test_composer_joins_sections_in_order() -> None:
    composer = PromptComposer().add("system", "You are {persona}.").add("instructions", "Be brief.", heading="Rules")
    assert composer.render(persona="a tutor") == "You are a tutor.\n\nRules\nBe brief."


def test_composer_examples_keep_braces_literal() -> None:
    composer = PromptComposer().add("system", "Use JSON.").examples([("2+2?", '{"answer": 4}')])
    assert composer.render() == 'Use JSON.\n\nExamples\nExample 1:\nInput: 2+2?\nOutput: {"answer": 4}'


def test_composer_validate_names_the_bad_section() -> None:
    composer = PromptComposer().add("system", PromptTemplate("Hi {name}", variables=["name", "extra"]))
    with pytest.raises(PromptError, match="section 'system'"):
        composer.validate()


def test_composer_build_declares_every_section_variable() -> None:
    template = PromptComposer().add("a", "{x}").add("b", "{y} {x}").build()
    assert template.variables == ("x", "y")


def test_composer_rejects_duplicate_section() -> None:
    with pytest.raises(PromptError, match="already exists"):
        PromptComposer().add("system", "a").add("system", "b")


def test_registry_get_returns_latest_version() -> None:
    registry = PromptRegistry()
    registry.register("greet", "Hi {name}", version="1")
    registry.register("greet", "Hello {name}", version="2")
    assert registry.get("greet").template == "Hello {name}"


def test_registry_get_returns_requested_version() -> None:
    registry = PromptRegistry()
    registry.register("greet", "Hi {name}")
    registry.register("greet", "Hello {name}")
    assert registry.get("greet", version=1).template == "Hi {name}"


def test_registry_versions_are_immutable() -> None:
    registry = PromptRegistry()
    registry.register("greet", "Hi {name}", version="1")
    with pytest.raises(PromptError, match="immutable"):
        registry.register("greet", "Yo {name}", version="1")


def test_registry_validates_on_register() -> None:
    with pytest.raises(PromptError, match="never used"):
        PromptRegistry().register("greet", PromptTemplate("Hi", variables=["name"]))


def test_registry_unknown_name_lists_known_prompts() -> None:
    registry = PromptRegistry()
    registry.register("greet", "Hi")
    with pytest.raises(PromptError, match="registered prompts: greet"):
        registry.get("farewell")


def test_registry_unknown_version_lists_versions() -> None:
    registry = PromptRegistry()
    registry.register("greet", "Hi")
    with pytest.raises(PromptError, match="versions: 1"):
        registry.get("greet", version="9")
